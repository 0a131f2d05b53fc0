#!/usr/bin/env python3
"""Compile the portable core for the ESP8266's CPU and report its flash and RAM footprint.

Builds firmware/test/xtensa/core_entry.cpp (the core as the sketch uses it: a Node with
GT_BUFFER_READINGS readings, the OLED pages, the WiFi policy, HTTP and MQTT uplinks) with
Debian's ``xtensa-lx106-elf-g++`` and picolibc (C headers only), the host tests' warnings as
errors, ``-Os``; then runs ``xtensa-lx106-elf-size`` on the object and sums its sections:

* flash: code (.text, .literal), read-only data (.rodata) and .data's initial values;
* RAM: .data, .bss, and .rodata too, which the ESP8266 Arduino core's linker script copies
  into DRAM unless marked PROGMEM.

An object, not a linked image: the Arduino core, WiFi stack and libraries of the sketch
come on top. Needs ``apt-get install gcc-xtensa-lx106 picolibc-xtensa-lx106-elf``.

    python3 firmware/footprint.py [--readings 256] [--json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parent
CORE = FIRMWARE / "lib" / "gridtwin_core" / "src"
ENTRY = FIRMWARE / "test" / "xtensa" / "core_entry.cpp"
CXX, SIZE = "xtensa-lx106-elf-g++", "xtensa-lx106-elf-size"
SPECS = "/usr/lib/xtensa-lx106-elf/picolibc.specs"
FLAGS = ["-std=c++17", "-Os", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wconversion", "-Wsign-conversion",
         "-fno-exceptions", "-fno-rtti", "-ffunction-sections", "-fdata-sections", "-mlongcalls"]


def toolchain_missing() -> str | None:
    """Why the Xtensa build cannot run here, or None."""
    missing = [tool for tool in (CXX, SIZE) if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found: apt-get install gcc-xtensa-lx106 picolibc-xtensa-lx106-elf"
    if not Path(SPECS).exists():
        return f"{SPECS} not found: apt-get install picolibc-xtensa-lx106-elf"
    return None


def compile_core(out_dir: Path, readings: int = 256) -> Path:
    """The core's object file for the LX106; raises RuntimeError with the compiler's message."""
    obj = out_dir / "gridtwin_core_lx106.o"
    cmd = [CXX, f"--specs={SPECS}", *FLAGS, f"-DGT_BUFFER_READINGS={readings}", f"-I{CORE}", "-c", str(ENTRY), "-o", str(obj)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{CXX} failed on the portable core:\n{proc.stderr}")
    return obj


def footprint(obj: Path) -> dict:
    """Bytes per category from ``xtensa-lx106-elf-size -A`` and the Berkeley summary line."""
    sysv = subprocess.run([SIZE, "-A", str(obj)], capture_output=True, text=True, check=True).stdout
    sums = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for line in sysv.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        name, size = parts[0], int(parts[1])
        for prefix, key in ((".text", "text"), (".literal", "text"), (".rodata", "rodata"), (".data", "data"),
                            (".bss", "bss")):
            if name == prefix or name.startswith(prefix + "."):
                sums[key] += size
                break
    berkeley = subprocess.run([SIZE, str(obj)], capture_output=True, text=True, check=True).stdout.rstrip()
    return {
        **{f"{k}_bytes": v for k, v in sums.items()},
        "flash_bytes": sums["text"] + sums["rodata"] + sums["data"],
        "ram_bytes": sums["data"] + sums["bss"] + sums["rodata"],
        "size_output": berkeley,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=256, help="GT_BUFFER_READINGS, the node's queue length")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", type=Path, help="write the object file here instead of a temporary directory")
    args = ap.parse_args()
    why = toolchain_missing()
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.keep or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            result = footprint(compile_core(out_dir, args.readings))
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    result = {"readings": args.readings, **result}
    if args.json:
        print(json.dumps(result))
        return 0
    print(result.pop("size_output").replace(str(out_dir) + "/", ""))
    width = max(map(len, result)) + 2
    for name, value in result.items():
        print(f"{name:{width}s}{value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
