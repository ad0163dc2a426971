"""In-dash web HMI (stdlib HTTP server + static page)."""

from agent.hmi.server import EventHub, HmiServer

__all__ = ["EventHub", "HmiServer"]
