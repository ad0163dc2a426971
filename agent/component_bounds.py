"""Bounds on the component verdicts the agent keeps (issue #10: a flood of valid cloud
messages, each with a new VIN, filled /api/alerts?active=1 and grew /api/components
without limit). A car has a known, small set of VINs and components: `[components]`
vins / max_vins / max_components (agent.config) say how many; a document that would go
beyond is rejected as a whole (counted per reason) and nothing of it is stored."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ComponentLimits:
    vins: tuple = field(default_factory=tuple)   # () = any VIN, up to max_vins
    max_vins: int = 4
    max_components: int = 200

    @classmethod
    def from_config(cls, c) -> "ComponentLimits":
        return cls(tuple(c.vins), c.max_vins, c.max_components)

    def check(self, store, vin: str, names: list[str]) -> tuple[str, str] | None:
        """-> (reason, detail) if storing these notes would break a bound, else None."""
        if self.vins and vin not in self.vins:
            return "unknown_vin", f"vin {vin!r} is not one of components.vins"
        with store.transaction() as conn:
            vins = {r[0] for r in conn.execute("SELECT DISTINCT vin FROM components")}
            if vin not in vins and len(vins) >= self.max_vins:
                return "too_many_vins", f"vin {vin!r}: already {len(vins)} VINs (components.max_vins)"
            total = conn.execute("SELECT count(*) FROM components").fetchone()[0]
            have = {r[0] for r in conn.execute("SELECT component FROM components WHERE vin = ?", (vin,))}
        new = sum(1 for n in set(names) if n not in have)
        if total + new > self.max_components:
            return "too_many_components", (f"{new} new component(s) for {vin!r} over "
                                           f"components.max_components={self.max_components}")
        return None
