"""The cross SQL–model optimizer: turns each bound predict(...) call into a plan.

It reads like sqlglot's ``optimize()``: an ordered list of rules, each a small module
taking the plan state and returning a new one with its own EXPLAIN notes:

1. ``predicates`` — what the query proves about the call's inputs;
2. ``prune`` — tree branches no allowed row reaches are removed;
3. ``projection`` — features the pruned trees no longer test are not read;
4. ``output_predicates`` — ``predict(...) > c`` on one tree becomes a boolean filter;
5. ``inline`` — small models run as DuckDB expressions when ``cost`` says so.

``PlanState.finish`` then gives the plan: the decided SQL, or ONNX (pruned and projected
when that changed the model). A failure inside the optimizer never breaks a query: the
call then runs as the original model, with a note saying why.
"""

from __future__ import annotations

from collections.abc import Callable

from nbgov.sqlml.optimizer import inline, output_predicates, predicates, projection, prune
from nbgov.sqlml.optimizer.state import Memo, PlanState, original_plan
from nbgov.sqlml.plan import CallPlan, ModelCall

__all__ = ["RULES", "Planner", "Rule", "optimize"]

Rule = Callable[[PlanState], PlanState]

RULES: tuple[Rule, ...] = (
    predicates.rule,
    prune.rule,
    projection.rule,
    output_predicates.rule,
    inline.rule,
)
SQL_RULES: tuple[Rule, ...] = (output_predicates.rule, inline.rule)  # the rules that translate to SQL


def optimize(call: ModelCall, rules: tuple[Rule, ...] = RULES, memo: Memo | None = None, *, batched: bool = False) -> CallPlan:
    """Run ``rules`` in order over the call's plan state and finish it into a plan."""
    state = PlanState.start(call, memo or Memo(), batched=batched)
    for rule in rules:
        state = rule(state)
    return state.finish()


class Planner:
    """The optimizer as the engine's planner: the rule list plus what the rules keep per
    model (parsed models, pruned forests, SQL templates) across calls."""

    def __init__(
        self,
        *,
        rules: tuple[Rule, ...] = RULES,
        inline_sql: bool = True,
        batched: bool = False,
        max_cache: int = 64,
    ) -> None:
        """``inline_sql=False`` leaves out the rules that translate models to SQL;
        ``batched``: an ONNX plan will score the relation in large batches (ML.PREDICT),
        which makes onnxruntime cheaper than through the per-call UDF."""
        self.rules = rules if inline_sql else tuple(r for r in rules if r not in SQL_RULES)
        self.batched = batched
        self._memo = Memo(max_cache)

    def plan_call(self, call: ModelCall) -> CallPlan:
        try:
            return optimize(call, self.rules, self._memo, batched=self.batched)
        except Exception as err:  # noqa: BLE001 - the optimizer must never break a query
            return CallPlan(original_plan(call), (f"optimizer skipped: {type(err).__name__}: {err}",), {})
