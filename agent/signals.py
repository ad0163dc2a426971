"""Canonical signal names (VSS-style). The one list every part of trey-edge uses.

A vehicle's signal map (TOML) binds each of these to a message/signal of its DBC;
a name left unmapped is simply unavailable on that vehicle.
"""

VOLTAGE = "Vehicle.LowVoltageBattery.CurrentVoltage"          # V
CURRENT = "Vehicle.LowVoltageBattery.CurrentCurrent"          # A, + charging, - discharging
TEMPERATURE = "Vehicle.LowVoltageBattery.Temperature"         # degC
SOC = "Vehicle.LowVoltageBattery.StateOfCharge"               # %
THROUGHPUT = "Vehicle.LowVoltageBattery.ChargeThroughput"     # Ah, cumulative |I| dt (optional)
BATTERY_ID = "Vehicle.LowVoltageBattery.Id"
RATED_CYCLES = "Vehicle.LowVoltageBattery.RatedCycles"
NOMINAL_CAPACITY = "Vehicle.LowVoltageBattery.NominalCapacity"  # Ah
INSTALL_DATE = "Vehicle.LowVoltageBattery.InstallDate"        # days since 1970-01-01 (UTC)
SYSTEM_STATE = "Vehicle.LowVoltageSystemState"                # "OFF" | "ACC" | "ON" | "START"
SPEED = "Vehicle.Speed"                                       # km/h
ODOMETER = "Vehicle.TraveledDistance"                         # km
CURRENT_TIME = "Vehicle.CurrentTime"                          # UTC epoch seconds

ALL = (
    VOLTAGE, CURRENT, TEMPERATURE, SOC, THROUGHPUT,
    BATTERY_ID, RATED_CYCLES, NOMINAL_CAPACITY, INSTALL_DATE,
    SYSTEM_STATE, SPEED, ODOMETER, CURRENT_TIME,
)

SYSTEM_STATES = ("OFF", "ACC", "ON", "START")
