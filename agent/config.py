"""Agent configuration: TOML, validated before anything runs.

Every section is a dataclass below; its fields are the only keys allowed. An unknown
key, a missing required key or a bad value raises ConfigError naming `section.key`.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_type_hints

REQUIRED = object()   # sentinel default: key must be given


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class VehicleConfig:
    id: str = REQUIRED  # type: ignore[assignment]


@dataclass(frozen=True)
class CanConfig:
    interface: str = "virtual"          # any python-can interface: virtual, udp_multicast, socketcan, slcan...
    channel: str = "trey"
    bitrate: int = 500_000
    dbc: str = ""                       # "" = the shipped agent/data/trey_vehicle.dbc
    signal_map: str = ""                # "" = the shipped agent/data/signal_map.toml
    profile: str = ""                   # a shipped vehicle profile (agent/vehicles.py): its DBC + map
    serial_baudrate: int = 115_200      # slcan only: serial link speed
    port: int = 0                       # udp_multicast only: UDP port (0 = python-can default 43113)


@dataclass(frozen=True)
class StateConfig:
    dir: str = REQUIRED  # type: ignore[assignment]


@dataclass(frozen=True)
class ModelsConfig:
    battery: str = ""                   # "" = shipped bundle
    compliance: str = ""                # "" = shipped bundle
    trusted_keys: list = field(default_factory=list)   # [] = shipped DEVELOPMENT key
    root: str = ""                      # release root of trust (JSON); "" = shipped DEVELOPMENT root


@dataclass(frozen=True)
class HmiConfig:
    enabled: bool = True
    listen: str = "127.0.0.1:8080"
    # Limits (agent.hmi.http; README "HMI limits"). Over a connection limit the oldest
    # waiting connection is evicted, so idle/slow clients never lock the driver's page out.
    max_connections: int = 512             # open TCP connections in total (~6 kB each)
    max_connections_per_client: int = 384  # from one address
    max_event_streams: int = 8             # /api/events streams (the oldest is evicted)
    header_timeout_s: int = 10             # request head complete within this of its first byte
    body_timeout_s: int = 10               # request body (<= 4 KiB) within this
    idle_timeout_s: int = 30               # nothing sent (fresh or keep-alive): closed
    write_timeout_s: int = 10              # a client not reading its response is dropped
    workers: int = 4                       # threads running route handlers (SQLite reads)


@dataclass(frozen=True)
class MqttConfig:
    host: str = REQUIRED  # type: ignore[assignment]
    port: int = 1883
    client_id: str = ""                 # "" = vehicle id
    keepalive: int = 60
    username: str = ""
    password_file: str = ""
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    outbox_max_rows: int = 100_000
    outbox_max_bytes: int = 64 * 1024 * 1024
    max_inflight: int = 20
    max_payload_bytes: int = 4 * 1024 * 1024     # downlink size limit (model bundles are the big ones);
                                                 # sent as MQTT 5 Maximum Packet Size in CONNECT, so the
                                                 # broker never delivers a bigger message
    downlink_rate_per_s: int = 20                # components / ack messages per second, per topic kind;
    downlink_burst: int = 40                     # over it (after a burst) rejected as <kind>:rate_limited
    reconnect_min_ms: int = 500                  # reconnect backoff: exponential from min to max, jittered
    reconnect_max_ms: int = 30_000


@dataclass(frozen=True)
class ComponentsConfig:
    spec: str = ""                      # local file of this car's component notes (JSON lines)
    # Bounds on what documents (spec or cloud) may make the agent keep: a car has a few VINs
    # and a few hundred components, and a flood of valid messages must not grow the state,
    # the HMI list or the alerts without limit (nor push the car's own alerts out of view).
    vins: list = field(default_factory=list)   # [] = any VIN, up to max_vins distinct ones
    max_vins: int = 4                   # distinct VINs kept; a document for another is rejected
    max_components: int = 200           # (vin, component) verdicts kept in total (<= 400)


@dataclass(frozen=True)
class BatteryConfig:
    """The 12 V battery when the bus carries no identity frame (docs/rollup.md). A battery
    change is then a change of `id` here: a new history starts, as with an identity frame."""
    id: str = ""                        # "" = identity from the bus (Vehicle.LowVoltageBattery.Id)
    rated_cycles: int = 0               # 0 = unknown
    nominal_capacity_ah: float = 0.0    # 0 = unknown (no cycles without it)
    install_date: str = ""              # ISO date, "" = unknown (no Battery_Age_Days)
    sleep_gap_s: float = 30.0           # a longer gap between current samples = the bus slept
    quiescent_current_a: float = 0.0    # draw integrated over a sleeping bus (none by default)


@dataclass(frozen=True)
class ObdConfig:
    """OBD-II polling (agent/obd.py) for cars without a DBC for these signals."""
    enabled: bool = False
    request_id: int = 0x7E0             # the engine ECU's physical request ID
    response_id: int = 0x7E8
    interval_s: float = 1.0             # a round of every supported PID while the engine runs
    probe_s: float = 5.0                # RPM only, while the bus is awake and the engine is not running
    awake_s: float = 2.0                # the bus is awake when a frame was received this recently
    timeout_s: float = 0.5              # an unanswered request is given up after this
    est_running_a: float = 0.0          # cycles estimate without a current: mean |I| while the engine runs
    est_start_ah: float = 0.0           # ... plus this charge per engine start (0 and 0 = no estimate)


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"


@dataclass(frozen=True)
class Config:
    vehicle: VehicleConfig
    can: CanConfig
    state: StateConfig
    models: ModelsConfig = ModelsConfig()
    hmi: HmiConfig = HmiConfig()
    mqtt: MqttConfig | None = None      # absent = offline
    components: ComponentsConfig = ComponentsConfig()
    log: LogConfig = LogConfig()
    battery: BatteryConfig = BatteryConfig()
    obd: ObdConfig = ObdConfig()
    source: str = ""


_SECTIONS = {
    "vehicle": VehicleConfig, "can": CanConfig, "state": StateConfig, "models": ModelsConfig,
    "hmi": HmiConfig, "mqtt": MqttConfig, "components": ComponentsConfig, "log": LogConfig,
    "battery": BatteryConfig, "obd": ObdConfig,
}
_REQUIRED_SECTIONS = ("vehicle", "state")


def _check_type(where: str, value, typ):
    if typ is bool:
        ok = isinstance(value, bool)
    elif typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif typ is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif typ is list:
        if isinstance(value, str):
            value = [value]
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, typ)
    if not ok:
        raise ConfigError(f"{where}: expected {typ.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(section: str, cls, raw: dict):
    if not isinstance(raw, dict):
        raise ConfigError(f"[{section}] must be a table")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"unknown key {section}.{unknown[0]} (allowed: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        where = f"{section}.{f.name}"
        if f.name in raw:
            kwargs[f.name] = _check_type(where, raw[f.name], hints[f.name])
        elif f.default is REQUIRED:
            raise ConfigError(f"missing required key {where}")
    return cls(**kwargs)


def _validate(cfg: Config) -> None:
    from agent import validate
    try:
        validate.vehicle_id(cfg.vehicle.id, "vehicle.id")
    except validate.InvalidInput as exc:
        raise ConfigError(str(exc)) from None
    if cfg.mqtt is not None and cfg.mqtt.client_id:
        try:
            validate.vehicle_id(cfg.mqtt.client_id, "mqtt.client_id")
        except validate.InvalidInput as exc:
            raise ConfigError(str(exc)) from None
    _check_interface(cfg.can.interface)
    h = cfg.hmi
    for key, lo, hi in (("max_connections", 4, 4096), ("max_connections_per_client", 1, 4096),
                        ("max_event_streams", 1, 256), ("header_timeout_s", 1, 300), ("body_timeout_s", 1, 300),
                        ("idle_timeout_s", 1, 3600), ("write_timeout_s", 1, 300), ("workers", 1, 32)):
        if not lo <= getattr(h, key) <= hi:
            raise ConfigError(f"hmi.{key}: {getattr(h, key)} out of range {lo}..{hi}")
    if not 10_000 <= cfg.can.bitrate <= 8_000_000:
        raise ConfigError(f"can.bitrate: {cfg.can.bitrate} out of range 10000..8000000")
    if not 0 <= cfg.can.port <= 65535:
        raise ConfigError(f"can.port: {cfg.can.port} out of range 0..65535")
    if cfg.can.profile:
        from agent.vehicles import PROFILES
        if cfg.can.profile not in PROFILES:
            raise ConfigError(f"can.profile: {cfg.can.profile!r} is not a shipped profile ({', '.join(sorted(PROFILES))})")
    for key in ("dbc", "signal_map"):
        p = getattr(cfg.can, key)
        if p and not Path(p).is_file():
            raise ConfigError(f"can.{key}: file not found: {p}")
    parse_listen(cfg.hmi.listen, "hmi.listen")
    comp = cfg.components
    if not 1 <= comp.max_vins <= 64:
        raise ConfigError(f"components.max_vins: {comp.max_vins} out of range 1..64")
    if not 1 <= comp.max_components <= 400:      # below the 500 alerts /api/alerts lists
        raise ConfigError(f"components.max_components: {comp.max_components} out of range 1..400")
    for v in comp.vins:
        try:
            validate.vin(v, "components.vins")
        except validate.InvalidInput as exc:
            raise ConfigError(str(exc)) from None
    if cfg.components.spec and not Path(cfg.components.spec).is_file():
        raise ConfigError(f"components.spec: file not found: {cfg.components.spec}")
    for p in cfg.models.trusted_keys:
        if not Path(p).exists():
            raise ConfigError(f"models.trusted_keys: not found: {p}")
    if cfg.models.root:
        from agent.release_metadata import check_root_file
        try:
            check_root_file(cfg.models.root)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"models.root: {exc}") from None
    _validate_battery(cfg.battery)
    _validate_obd(cfg.obd)
    if cfg.log.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"log.level: {cfg.log.level!r} is not DEBUG/INFO/WARNING/ERROR")
    m = cfg.mqtt
    if m is not None:
        if not 1 <= m.port <= 65535:
            raise ConfigError(f"mqtt.port: {m.port} out of range 1..65535")
        if not 5 <= m.keepalive <= 3600:
            raise ConfigError(f"mqtt.keepalive: {m.keepalive} out of range 5..3600")
        for key in ("outbox_max_rows", "outbox_max_bytes", "max_inflight", "max_payload_bytes",
                    "reconnect_min_ms", "reconnect_max_ms", "downlink_rate_per_s", "downlink_burst"):
            if getattr(m, key) <= 0:
                raise ConfigError(f"mqtt.{key}: must be > 0")
        if m.reconnect_max_ms < m.reconnect_min_ms:
            raise ConfigError("mqtt.reconnect_max_ms must be >= mqtt.reconnect_min_ms")
        for key in ("password_file", "ca_file", "cert_file", "key_file"):
            p = getattr(m, key)
            if p and not Path(p).is_file():
                raise ConfigError(f"mqtt.{key}: file not found: {p}")
        if bool(m.cert_file) != bool(m.key_file):
            raise ConfigError("mqtt.cert_file and mqtt.key_file go together (mutual TLS)")
        if (m.ca_file or m.cert_file) and not m.tls:
            raise ConfigError("mqtt.ca_file/cert_file given but mqtt.tls is false")
        if m.password_file and not m.username:
            raise ConfigError("mqtt.password_file given without mqtt.username")


def _validate_battery(b: BatteryConfig) -> None:
    import math
    from datetime import date
    if b.id:
        from agent import validate
        try:
            validate.vehicle_id(b.id, "battery.id")
        except validate.InvalidInput as exc:
            raise ConfigError(str(exc)) from None
    if b.rated_cycles < 0:
        raise ConfigError("battery.rated_cycles: must be >= 0")
    for key in ("nominal_capacity_ah", "sleep_gap_s", "quiescent_current_a"):
        v = getattr(b, key)
        if not math.isfinite(v) or v < 0:
            raise ConfigError(f"battery.{key}: must be a finite number >= 0, got {v!r}")
    if b.sleep_gap_s <= 0:
        raise ConfigError("battery.sleep_gap_s: must be > 0")
    if b.install_date:
        try:
            date.fromisoformat(b.install_date)
        except ValueError:
            raise ConfigError(f"battery.install_date: {b.install_date!r} is not an ISO date (YYYY-MM-DD)") from None
    if (b.rated_cycles or b.nominal_capacity_ah or b.install_date) and not b.id:
        raise ConfigError("battery.id: required when battery.rated_cycles/nominal_capacity_ah/install_date are set")


def _validate_obd(o: ObdConfig) -> None:
    import math
    for key in ("request_id", "response_id"):
        if not 0 <= getattr(o, key) <= 0x7FF:
            raise ConfigError(f"obd.{key}: must be an 11-bit CAN ID (0..0x7FF)")
    for key in ("interval_s", "probe_s", "awake_s", "timeout_s"):
        v = getattr(o, key)
        if not math.isfinite(v) or not 0.01 <= v <= 3600:
            raise ConfigError(f"obd.{key}: {v!r} out of range 0.01..3600")
    for key in ("est_running_a", "est_start_ah"):
        v = getattr(o, key)
        if not math.isfinite(v) or v < 0:
            raise ConfigError(f"obd.{key}: must be a finite number >= 0")


def _check_interface(name: str) -> None:
    """An interface python-can does not know would only fail later, with a traceback."""
    try:
        from can.interfaces import VALID_INTERFACES
    except ImportError:                  # python-can missing: the run reports it
        return
    if name not in VALID_INTERFACES:
        raise ConfigError(f"can.interface: unknown interface {name!r} "
                          f"(python-can knows: {', '.join(sorted(VALID_INTERFACES))})")


def parse_listen(value: str, where: str = "listen") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not re.fullmatch(r"[0-9]{1,5}", port) or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: {value!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def config_from_dict(raw: dict, source: str = "<dict>") -> Config:
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}] (allowed: {', '.join(_SECTIONS)})")
    for s in _REQUIRED_SECTIONS:
        if s not in raw:
            raise ConfigError(f"missing required section [{s}]")
    parts = {name: _build(name, cls, raw[name]) for name, cls in _SECTIONS.items() if name in raw}
    parts.setdefault("can", CanConfig())
    cfg = Config(**parts, source=source)
    _validate(cfg)
    return cfg


def load_config(path: str | Path) -> Config:
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a directory, not a file: {path}") from None
    except OSError as exc:
        raise ConfigError(f"config file unreadable: {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start}); TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None
    try:
        return config_from_dict(raw, str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
