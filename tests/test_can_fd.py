"""CAN FD on every path: a DBC with 64-byte (and extended-ID) messages -> the simulator encodes FD
frames -> a virtual bus -> the agent decodes them; the same stream recorded to a candump log and
replayed with `trey-agent replay` gives the same rows."""

from __future__ import annotations

import uuid

import can
import cantools
from cantools.database.can import Database, Message

from agent import signals as S
from agent.reader import Pipeline
from agent.signal_map import DEFAULT_DBC, DEFAULT_SIGNAL_MAP, load_signal_map
from agent.store import StateStore
from can_sim import Simulator
from tests.bus_support import diff_rows
from tests.test_bus_e2e import _drive_over_virtual
from tests.test_replay import agent_config, replay


def fd_variant(path):
    """The shipped DBC with IBS_Status as a 64-byte CAN FD message on extended ID 0x123 (below 0x800)
    and IBS_Throughput as a 24-byte FD message."""
    db = cantools.database.load_file(str(DEFAULT_DBC))
    msgs = []
    for m in db.messages:
        if m.name == "IBS_Status":
            m = Message(0x123, m.name, 64, m.signals, is_extended_frame=True, is_fd=True, senders=m.senders)
        elif m.name == "IBS_Throughput":
            m = Message(m.frame_id, m.name, 24, m.signals, is_fd=True, senders=m.senders)
        msgs.append(m)
    path.write_text(Database(messages=msgs, nodes=db.nodes).as_dbc_string())
    return path


def test_can_fd_frames_through_sim_bus_record_and_replay(tmp_path):
    dbc = fd_variant(tmp_path / "fd.dbc")
    smap = load_signal_map(dbc, DEFAULT_SIGNAL_MAP)
    assert smap.bindings[S.VOLTAGE].key == (0x123, True)
    sim = Simulator("sensor-faults", seed=3, days=20, dbc=dbc, signal_map=smap)
    fd = [m for _, m in sim.frames() if m.arbitration_id == 0x123 and m.is_extended_id and not m.is_remote_frame]
    assert all(m.is_fd for m in fd) and sum(len(m.data) == 64 for m in fd) > 100     # (short ones: bad_dlc faults)
    ch = f"fd-{uuid.uuid4().hex}"
    rx = can.Bus(interface="virtual", channel=ch)
    p = Pipeline(smap, StateStore(tmp_path / "live"), bus=rx, own_bus=True)
    log = tmp_path / "fd.log"
    _drive_over_virtual(sim.frames(), p, ch, record=log)
    p.close()
    truth = sim.truth()
    assert diff_rows(p.store.history(), truth) == []
    assert {k: p.store.counters()[k] for k in sim.faults()} == sim.faults()
    p.store.close()
    assert "##" in log.read_text()[:20000]                       # candump's CAN FD notation
    cfg = agent_config(tmp_path, tmp_path / "replayed", f'dbc = "{dbc}"\n')
    r = replay(log, cfg)
    assert r.returncode == 0, r.stderr
    st = StateStore(tmp_path / "replayed")
    assert diff_rows(st.history(), truth) == []
    st.close()
