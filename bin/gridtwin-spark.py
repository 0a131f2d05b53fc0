"""The ``gridtwin`` CLI as a file for ``spark-submit`` (which needs a .py path, not a console script).

    spark-submit --master spark://head:7077 bin/gridtwin-spark.py features --engine spark --out /shared/features ...
"""

from gridtwin_lib.cli import main

main()
