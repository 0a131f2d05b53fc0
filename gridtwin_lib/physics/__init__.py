"""Physics and optimisation shared by twins and estimators, in pvlib's style: pure functions
(and small explicit objects where state is real) with units in their Parameters/Returns sections.

``battery``    the battery site (:class:`~.battery.BatterySite`), the LP day dispatch (HiGHS), the rule
               dispatch, re-simulation of a schedule on the actual day and the day's cost
``powerflow``  the pandapower CIGRE LV feeder (:data:`~.powerflow.CIGRE_SUBNETS`), AC power flow, and
               :class:`~.powerflow.CigreFeeder` with an explicit memo of power flows
``unbalance``  voltage unbalance: VUF ``|V2|/|V1|`` (IEC 61000-4-30) and magnitude-only LVUR
``unbalanced_feeder``  a radial LV feeder solved hour by hour with pandapower's unbalanced ``runpp_3ph``,
               batched and memoised (:class:`~.unbalanced_feeder.UnbalancedFeeder`)
``pq``         the EN 50160 power-quality index of 10-min windows

Import direction: physics imports only config, units and errors (a leaf module); simulate,
datasets and models import physics, never the other way round.
"""
