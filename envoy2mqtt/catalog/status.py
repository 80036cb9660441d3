"""Device status flags and state codes in plain English (the gateway's own UI strings)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

OK_FLAGS: Final = frozenset({"envoy.global.ok", "envoy.cond_flags.obs_strs.ok"})
# states worth showing that are not faults (a sleeping AC battery)
BENIGN_FLAGS: Final = frozenset(
    {"envoy.cond_flags.obs_strs.sleeping", "envoy.cond_flags.pcu_ctrl.sleep-mode"}
)

# envoy.cond_flags.<group>.<flag> -> text, as the gateway's web UI translates them
FLAGS: Final[Mapping[str, Mapping[str, str]]] = {
    "acb_ctrl": {
        "bmuhardwareerror": "BMU Hardware Error",
        "bmuimageerror": "BMU Image Error",
        "bmumaxcurrentwarning": "BMU Max Current Warning",
        "bmusenseerror": "BMU Sense Error",
        "cellmaxtemperror": "Cell Max Temperature Error",
        "cellmaxtempwarning": "Cell Max Temperature Warning",
        "cellmaxvoltageerror": "Cell Max Voltage Error",
        "cellmaxvoltagewarning": "Cell Max Voltage Warning",
        "cellmintemperror": "Cell Min Temperature Error",
        "cellmintempwarning": "Cell Min Temperature Warning",
        "cellminvoltageerror": "Cell Min Voltage Error",
        "cellminvoltagewarning": "Cell Min Voltage Warning",
        "cibcanerror": "CIB CAN Error",
        "cibimageerror": "CIB Image Error",
        "cibspierror": "CIB SPI Error",
    },
    "obs_strs": {
        "discovering": "Discovering",
        "failure": "Failure to report",
        "flasherror": "Flash Error",
        "notmonitored": "Not Monitored",
        "ok": "Normal",
        "plmerror": "PLM Error",
        "secmodeenterfailure": "Secure mode enter failure",
        "secmodeexitfailure": "Secure mode exit failure",
        "sleeping": "Sleeping",
    },
    "pcu_chan": {
        "acMonitorError": "AC Monitor Error",
        "acfrequencyhigh": "AC Frequency High",
        "acfrequencylow": "AC Frequency Low",
        "acfrequencyoor": "AC Frequency Out Of Range",
        "acvoltage_avg_hi": "AC Voltage Average High",
        "acvoltagehigh": "AC Voltage High",
        "acvoltagelow": "AC Voltage Low",
        "acvoltageoor": "AC Voltage Out Of Range",
        "acvoltageoosp1": "AC Voltage Out Of Range - Phase 1",
        "acvoltageoosp2": "AC Voltage Out Of Range - Phase 2",
        "acvoltageoosp3": "AC Voltage Out Of Range - Phase 3",
        "agfpowerlimiting": "AGF Power Limiting",
        "dcresistancelow": "DC Resistance Low",
        "dcresistancelowpoweroff": "DC Resistance Low - Power Off",
        "dcvoltagetoohigh": "DC Voltage Too High",
        "dcvoltagetoolow": "DC Voltage Too Low",
        "dfdt": "AC Frequency Changing too Fast",
        "gfitripped": "GFI Tripped",
        "gridgone": "Grid Gone",
        "gridinstability": "Grid Instability",
        "gridoffsethi": "Grid Offset Hi",
        "gridoffsetlow": "Grid Offset Low",
        "hardwareError": "Hardware Error",
        "hardwareWarning": "Hardware Warning",
        "highskiprate": "High Skip Rate",
        "invalidinterval": "Invalid Interval",
        "pwrgenoffbycmd": "Power generation off by command",
        "skippedcycles": "Skipped Cycles",
        "vreferror": "Voltage Ref Error",
    },
    "pcu_ctrl": {
        "alertactive": "Alert Active",
        "altpwrgenmode": "Alternate Power Generation Mode",
        "altvfsettings": "Alternate Voltage and Frequency Settings",
        "badflashimage": "Bad Flash Image",
        "bricked": "No Grid Profile",
        "commandedreset": "Commanded Reset",
        "criticaltemperature": "Critical Temperature",
        "dc-pwr-low": "DC Power Too Low",
        "iuplinkproblem": "IUP Link Problem",
        "manutestmode": "In Manu Test Mode",
        "nsync": "Grid Perturbation Unsynchronized",
        "overtemperature": "Over Temperature",
        "poweronreset": "Power On Reset",
        "pwrgenoffbycmd": "Power generation off by command",
        "runningonac": "Running on AC",
        "sleep-mode": "Sleep Mode",  # not in the web UI's table: AC batteries (pyenphase)
        "tpmtest": "Transient Grid Profile",
        "unexpectedreset": "Unexpected Reset",
        "watchdogreset": "Watchdog Reset",
    },
    "rgm_chan": {
        "check_meter": "Meter Error",
        "power_quality": "Poor Power Quality",
    },
}
PREFIX: Final = "envoy.cond_flags."
NORMAL: Final = "Normal"


def describe_flag(flag: str) -> str:
    """One flag in plain English; an unknown flag is passed through as the gateway sent it."""
    if flag in OK_FLAGS:
        return NORMAL
    group, _, name = flag.removeprefix(PREFIX).partition(".")
    return FLAGS.get(group, {}).get(name, flag)


def notable(flags: Iterable[str]) -> list[str]:
    """The flags that say more than "all is well"."""
    return [flag for flag in flags if flag not in OK_FLAGS]


def status_text(flags: object) -> str | None:
    """A device's status flags as one line of plain English ("Normal" when all is well)."""
    if not isinstance(flags, list):
        return None
    texts = [describe_flag(flag) for flag in notable(str(flag) for flag in flags)]
    return "; ".join(dict.fromkeys(texts)) or NORMAL


def has_problem(flags: object) -> bool | None:
    """Whether any flag reports a fault (None when the device has no flag list)."""
    if not isinstance(flags, list):
        return None
    return any(flag not in BENIGN_FLAGS for flag in notable(str(flag) for flag in flags))


# the codes' prefixes name the device, not the state: ENCHG_STATE_READY is "Ready"
STATE_PREFIXES: Final = ("ENCHG_STATE_", "ENPWR_STATE_OPER_", "ENPWR_STATE_", "ENS_DEVICE_STATE_")


def state_text(code: object) -> str | None:
    """A device's state code in plain English: ENPWR_STATE_OPER_NO_GRID -> "No grid".

    A code with none of the known prefixes is passed through as the gateway sent it.
    """
    if not isinstance(code, str) or not code.strip():
        return None
    text = code.strip()
    for prefix in STATE_PREFIXES:
        if text.startswith(prefix) and len(text) > len(prefix):
            words = text.removeprefix(prefix).replace("_", " ").lower()
            return words[0].upper() + words[1:]
    return text
