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

DAILY_COLUMNS = SEED_COLUMNS + HEALTH_COLUMNS
