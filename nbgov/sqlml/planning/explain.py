"""EXPLAIN renders a ``Prepared``: the engine's plan of the final SQL, what planning did
for each model call and why, and the plan of each relation scored before the query."""

from __future__ import annotations

from dataclasses import dataclass

from nbgov.sqlml.planning.prepared import Prepared


@dataclass(frozen=True)
class EnginePlans:
    """An engine's own plans: of the final SQL, and of each relation a step scores
    (by the step's label), in step order."""

    final: str
    relations: tuple[tuple[str, str], ...] = ()


def render(prepared: Prepared, plans: EnginePlans) -> str:
    lines = [plans.final, *prepared.notes]
    for label, plan in plans.relations:
        lines += [f"{label}: relation scored before the query above:", plan]
    return "\n".join(lines)
