"""The daily-row contract: one row per battery per day, seed schema + health indicators.

CSV files use exactly these column names, in this order.
"""

SEED_COLUMNS = (
    "Date",                   # YYYY-MM-DD (UTC, vehicle time)
    "Battery_ID",
    "Battery_Age_Days",
    "Number_Of_Trips",
    "Daily_Trip_Duration",    # minutes
    "Daily_Cycles_Used",      # charge throughput / (2 x nominal capacity)
    "Lifetime_Cycles_Used",
    "Battery_Rated_Cycles",
)

HEALTH_COLUMNS = (
    "Min_Cranking_Voltage",   # V, lowest voltage seen while cranking (START); empty if no crank
    "Resting_Voltage",        # V, voltage at wake-up after parking (before cranking)
    "Min_Temperature",        # degC
    "Max_Temperature",        # degC
)

SOURCE_COLUMNS = (
    "Cycles_Source",          # how Daily_Cycles_Used was obtained (docs/rollup.md): "measured:throughput_counter",
                              # "measured:current", "estimated:engine_time"; empty = no cycles
)

DAILY_COLUMNS = SEED_COLUMNS + HEALTH_COLUMNS + SOURCE_COLUMNS
# Columns a row from an older agent may lack (uplink payloads, stored rows): read as empty.
OPTIONAL_COLUMNS = SOURCE_COLUMNS
STRING_COLUMNS = ("Date", "Cycles_Source")


def cycles_used(throughput_ah: float, nominal_capacity_ah: float) -> float:
    """What a cycle is, for every part of trey-edge: one full charge + discharge of the
    nominal capacity, i.e. charge throughput (integral of |I| dt) / (2 x capacity)."""
    return throughput_ah / (2.0 * nominal_capacity_ah)


# Component spec documents (JSON lines; the input of `trey-export score compliance`, the
# agent's `[components] spec` file and the MQTT components downlink share this shape):
#   {"vin": "WVWZZZ1JZXW000001", "components": [{"component": "alternator", "note": "..."}, ...]}
