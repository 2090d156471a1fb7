"""The cross SQL–model optimizer: turns each bound predict(...) call into a plan.

It reads like sqlglot's ``optimize()``: an ordered list of rules, each a small module
taking the plan state and returning a new one with its own EXPLAIN notes:

0. ``pipelines.lower`` — a featurizer in front of trees (one-hot encoders, scalers, ...,
   over several typed inputs) is lowered to trees over SQL columns of the inputs, with
   the query's predicates carried through it; the rules below then apply unchanged;
1. ``predicates`` — what the query proves about the call's inputs;
2. ``prune`` — tree branches no allowed row reaches are removed;
3. ``projection`` — features the pruned trees no longer test are not read
   (``pipelines.report`` names the model inputs no longer read at all);
4. ``output_predicates`` — ``predict(...) > c`` on one tree becomes a boolean filter;
   ``ensemble_bounds`` — on an ensemble, a boolean CASE decides it where bounds of the
   leaf sums prove it, the model scoring only the other rows;
5. ``inline`` — small models run as DuckDB expressions when ``cost`` says so;
6. ``pipelines.inline_linear`` — a featurizer + linear model, likewise.

``PlanState.finish`` then gives the plan: the decided SQL, or ONNX (pruned and projected
when that changed the model). A failure inside the optimizer never breaks a query: the
call then runs as the original model, with a note saying why.
"""

from __future__ import annotations

from collections.abc import Callable

from nbgov.sqlml.optimizer import ensemble_bounds, inline, output_predicates, pipelines, predicates, projection, prune
from nbgov.sqlml.optimizer.cost import DUCKDB, CostProfile
from nbgov.sqlml.optimizer.state import Memo, PlanState, original_plan
from nbgov.sqlml.plan import CallPlan, CompiledKernels, ModelCall

__all__ = ["RULES", "Planner", "Rule", "optimize"]

Rule = Callable[[PlanState], PlanState]

RULES: tuple[Rule, ...] = (
    pipelines.lower,
    predicates.rule,
    prune.rule,
    projection.rule,
    pipelines.report,
    output_predicates.rule,
    ensemble_bounds.rule,
    inline.rule,
    pipelines.inline_linear,
)
# the rules that translate to SQL
SQL_RULES: tuple[Rule, ...] = (output_predicates.rule, ensemble_bounds.rule, inline.rule, pipelines.inline_linear)


def optimize(
    call: ModelCall,
    rules: tuple[Rule, ...] = RULES,
    memo: Memo | None = None,
    *,
    batched: bool = False,
    exact_strings: bool = False,
    costs: CostProfile = DUCKDB,
    kernels: CompiledKernels | None = None,
) -> CallPlan:
    """Run ``rules`` in order over the call's plan state and finish it into a plan;
    ``exact_strings``: no collation is in effect, so string predicates prove categories;
    ``kernels``: which models would score compiled at once (the full model may then be
    cheaper than a pruned one left to onnxruntime)."""
    state = PlanState.start(
        call, memo or Memo(), batched=batched, exact_strings=exact_strings, costs=costs, kernels=kernels
    )
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
        exact_strings: bool = False,
        costs: CostProfile = DUCKDB,
        kernels: CompiledKernels | None = None,
    ) -> None:
        """``inline_sql=False`` leaves out the rules that translate models to SQL;
        ``batched``: an ONNX plan will score the relation in large batches (ML.PREDICT),
        which makes onnxruntime cheaper than through the per-call UDF; ``kernels``: the
        executor's compiled tree scoring, asked which models score compiled at once."""
        self.rules = rules if inline_sql else tuple(r for r in rules if r not in SQL_RULES)
        self.batched = batched
        self.exact_strings = exact_strings
        self.costs = costs  # where inlined SQL runs: the cost model differs (cost.py)
        self.kernels = kernels
        self._memo = Memo(max_cache)

    def plan_call(self, call: ModelCall) -> CallPlan:
        try:
            return optimize(
                call, self.rules, self._memo, batched=self.batched, exact_strings=self.exact_strings, costs=self.costs,
                kernels=self.kernels,
            )
        except Exception as err:  # noqa: BLE001 - the optimizer must never break a query
            return CallPlan(original_plan(call), (f"optimizer skipped: {type(err).__name__}: {err}",), {})
