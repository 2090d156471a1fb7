"""The featurizer in front of a model: where every feature the model sees comes from.

skl2onnx turns a scikit-learn Pipeline into one ONNX graph: routing (Concat,
Gather, Slice, Reshape, Flatten, Squeeze/Unsqueeze, Identity, Cast,
ArrayFeatureExtractor, FeatureVectorizer — what a ColumnTransformer becomes),
elementwise transforms (Scaler, Mul/Add/Sub/Div by a constant, Imputer,
Binarizer), encoders (OneHotEncoder, LabelEncoder) and then the model proper —
trees or a linear model — reading one ``[N, F]`` tensor.

``read_pipeline`` interprets the featurizer symbolically: each of the F columns
becomes a ``Feature`` (one column of one graph input, maybe encoded, then the
elementwise steps applied to it) or a ``Mixed`` column (a Normalizer's output
depends on several).  The model proper becomes a standalone *head* model over
the F columns, so the tree and linear rules work on it unchanged.  Reading runs
no model and never guesses: any operator or shape not understood makes the
whole graph "not a pipeline" with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import onnx
from onnx import helper, numpy_helper

from nbgov.sqlml.models.steps import Arith, Binarize, CastTo, Impute, Step

HEAD_OPS = (
    "TreeEnsembleRegressor",
    "TreeEnsembleClassifier",
    "TreeEnsemble",
    "LinearRegressor",
    "LinearClassifier",
)
TREE_HEAD_OPS = HEAD_OPS[:3]
_ELEM_NAMES = {
    onnx.TensorProto.FLOAT: "float",
    onnx.TensorProto.DOUBLE: "double",
    onnx.TensorProto.STRING: "string",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.BOOL: "bool",
}
_ELEM_CODES = {name: code for code, name in _ELEM_NAMES.items()}


@dataclass(frozen=True)
class Source:
    """One column of one graph input (an ``[N, k]`` tensor has k of them)."""

    input: str
    column: int
    elem_type: str


@dataclass(frozen=True)
class OneHot:
    """OneHotEncoder's column for ``category``: 1.0 when the value equals it, else 0.0."""

    category: str
    categories: tuple[str, ...]
    strict: bool  # zeros=0: onnxruntime fails on a value outside ``categories``


@dataclass(frozen=True)
class LabelCode:
    """LabelEncoder: each known string becomes its number, anything else ``default``; or,
    ``strict``, anything else fails (an OrdinalEncoder's code looked up with no entry for
    unknown values: ``handle_unknown='error'``)."""

    mapping: tuple[tuple[str, float], ...]
    default: float
    strict: bool = False


@dataclass(frozen=True)
class NumberCode:
    """LabelEncoder of one number column: each known number (NaN too) becomes its code,
    anything else ``default``."""

    source: Source
    mapping: tuple[tuple[float, float], ...]
    default: float


@dataclass(frozen=True)
class Vocabulary:
    """The values of one input column a strict encoder knows (scikit-learn's
    ``handle_unknown='error'``): onnxruntime fails on any other value there."""

    source: Source
    encoder: str  # as scikit-learn names it: OneHotEncoder, OrdinalEncoder
    known: tuple[str, ...] | tuple[float, ...]

    def refuses(self, values: np.ndarray) -> bool:
        """Whether any of ``values`` (the column's feed) is none of the known values."""
        if self.source.elem_type == "string":
            known = set(self.known)
            return any(value not in known for value in values.tolist())
        numbers = values.astype(np.float64)
        nan_known = any(math.isnan(float(v)) for v in self.known)
        unknown = ~np.isin(numbers, np.asarray(self.known, dtype=np.float64))
        if nan_known:
            unknown &= ~np.isnan(numbers)
        return bool(unknown.any())

    def described(self) -> tuple[str, ...]:
        """The known values as a message lists them: ``gold``, ``3`` (an integer as one)."""
        return tuple(str(v) if isinstance(v, str) else _number_text(float(v)) for v in self.known)


Encoder = OneHot | LabelCode


@dataclass(frozen=True)
class Feature:
    """``steps`` applied to ``source`` (after ``encoder``, for a string source)."""

    source: Source
    encoder: Encoder | None = None
    steps: tuple[Step, ...] = ()
    elem_type: str = "float"  # the value's type after the steps

    def then(self, step: Step, elem_type: str | None = None) -> Feature:
        return replace(self, steps=self.steps + (step,), elem_type=elem_type or self.elem_type)


@dataclass(frozen=True)
class Mixed:
    """A column not read as one raw column's feature: computed from several at once (a row
    Normalizer), or by an operator kept opaque (a OneHotEncoder of numbers)."""

    sources: frozenset[Source]
    op: str
    elem_type: str = "float"
    fallible: bool = False  # onnxruntime may fail on some values (strict encoders, string casts)
    code: NumberCode | None = None  # a LabelEncoder of one number column
    vocabulary: Vocabulary | None = None  # a strict encoder of one number column: what it knows

    def described(self) -> str:
        """"OneHotEncoder(numeric categories) from tier", for EXPLAIN: the inputs it reads,
        which may be one (an encoder of numbers) or several (a Normalizer)."""
        return f"{self.op} from {', '.join(sorted({source.input for source in self.sources}))}"


Column = Feature | Mixed


@dataclass(frozen=True)
class Pipeline:
    """A model read as featurizer + head.

    ``features[i]`` is where column i of the head's input comes from; ``head`` is a
    model whose only input, ``head_input`` ``[N, len(features)]``, is that tensor.
    ``inputs`` are the original graph inputs (name, ONNX type name, columns).
    """

    inputs: tuple[tuple[str, str, int], ...]
    features: tuple[Column, ...]
    head: onnx.ModelProto = field(repr=False)
    head_input: str
    head_ops: tuple[str, ...]
    transforms: tuple[str, ...]  # featurizer operator types, in graph order (for EXPLAIN)

    @property
    def is_bare(self) -> bool:
        """No featurizer: the head reads a graph input directly."""
        return not self.transforms

    @property
    def trees_only(self) -> bool:
        return all(op in TREE_HEAD_OPS for op in self.head_ops)

    def sources(self) -> list[Source]:
        """Every column of every graph input, in input order."""
        out: list[Source] = []
        for name, elem, width in self.inputs:
            out += [Source(name, j, elem) for j in range(width)]
        return out

    @property
    def vocabularies(self) -> tuple[Vocabulary, ...]:
        """What each strict encoder knows of the column it reads: any other value there
        makes onnxruntime fail the whole call."""
        found: dict[Vocabulary, None] = {}
        for column in self.features:
            if isinstance(column, Mixed):
                if column.vocabulary is not None:
                    found[column.vocabulary] = None
            elif isinstance(column.encoder, OneHot) and column.encoder.strict:
                found[Vocabulary(column.source, "OneHotEncoder", column.encoder.categories)] = None
            elif isinstance(column.encoder, LabelCode) and column.encoder.strict:
                found[Vocabulary(column.source, "OrdinalEncoder", tuple(k for k, _ in column.encoder.mapping))] = None
        return tuple(found)


class NotAPipeline(ValueError):
    """The graph is not a featurizer + head this module understands (the message says why)."""


@dataclass
class _Block:
    """A tensor during interpretation: per-row indices into the column table, and its type."""

    cells: np.ndarray  # int array of per-row shape; cells[...] indexes _Reader.columns
    elem_type: str


def read_pipeline(model: onnx.ModelProto) -> Pipeline:
    """Read ``model`` as featurizer + head, or raise NotAPipeline saying why."""
    return _Reader(model).read()


class _Reader:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.constants: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in self.graph.initializer
        }
        self.columns: list[Column] = []
        self.blocks: dict[str, _Block] = {}
        self.missing: dict[str, tuple[str, float]] = {}  # IsNaN(x) / Equal(x, c): (x, NaN or c)

    def read(self) -> Pipeline:
        inputs = self._inputs()
        nodes = list(self.graph.node)
        heads = [i for i, n in enumerate(nodes) if n.op_type in HEAD_OPS]
        if not heads:
            raise NotAPipeline("no tree ensemble or linear model in the graph")
        features_name = nodes[heads[0]].input[0]
        featurizer = self._ancestors(features_name, nodes)
        head_nodes = [n for i, n in enumerate(nodes) if i not in featurizer]
        transforms: list[str] = []
        for i in sorted(featurizer):
            node = nodes[i]
            if node.op_type == "Constant":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
                continue
            self._interpret(node)
            if node.op_type not in _MASKS:
                transforms.append("Imputer" if node.op_type == "Where" else node.op_type)
        block = self.blocks.get(features_name)
        if block is None or block.cells.ndim != 1:
            raise NotAPipeline("the model's features are not one [N, F] tensor")
        if block.elem_type not in ("float", "double"):
            raise NotAPipeline(f"the model reads {block.elem_type} features")
        produced = {features_name} | set(self.constants)
        for node in head_nodes:
            missing = [x for x in node.input if x and x not in produced]
            if missing:
                raise NotAPipeline(f"{node.op_type} reads {missing[0]!r} beside the features tensor")
            produced.update(node.output)
        features = tuple(self.columns[int(i)] for i in block.cells)
        head = _head_model(self.model, features_name, block.elem_type, len(features), head_nodes)
        return Pipeline(
            inputs=inputs,
            features=features,
            head=head,
            head_input=features_name,
            head_ops=tuple(n.op_type for n in head_nodes if n.op_type in HEAD_OPS),
            transforms=tuple(transforms),
        )

    def _inputs(self) -> tuple[tuple[str, str, int], ...]:
        out = []
        for value in self.graph.input:
            if value.name in self.constants:
                continue
            ttype = value.type.tensor_type
            elem = _ELEM_NAMES.get(ttype.elem_type)
            dims = ttype.shape.dim
            if elem is None or len(dims) != 2 or not dims[1].HasField("dim_value"):
                raise NotAPipeline(f"input {value.name!r} is not an [N, k] tensor of a known type")
            width = int(dims[1].dim_value)
            first = len(self.columns)
            self.columns += [Feature(Source(value.name, j, elem), elem_type=elem) for j in range(width)]
            self.blocks[value.name] = _Block(np.arange(first, first + width), elem)
            out.append((value.name, elem, width))
        return tuple(out)

    def _ancestors(self, name: str, nodes: list[onnx.NodeProto]) -> set[int]:
        """Positions of the nodes that compute tensor ``name``."""
        producer = {out: i for i, n in enumerate(nodes) for out in n.output}
        seen: set[int] = set()
        stack = [name]
        while stack:
            tensor = stack.pop()
            i = producer.get(tensor)
            if i is None or i in seen:
                continue
            seen.add(i)
            stack.extend(x for x in nodes[i].input if x)
        return seen

    # -- interpretation ---------------------------------------------------------------

    def _interpret(self, node: onnx.NodeProto) -> None:
        handler = _HANDLERS.get(node.op_type)
        if handler is None:
            raise NotAPipeline(f"featurizer operator {node.op_type} is not understood")
        outputs = handler(self, node, _attributes(node))
        for name, block in zip(node.output, outputs):
            self.blocks[name] = block

    def block(self, name: str) -> _Block:
        found = self.blocks.get(name)
        if found is None:
            raise NotAPipeline(f"tensor {name!r} is not a featurizer column block")
        return found

    def constant(self, name: str) -> np.ndarray:
        if name not in self.constants:
            raise NotAPipeline(f"tensor {name!r} is not a constant")
        return self.constants[name]

    def add(self, column: Column) -> int:
        self.columns.append(column)
        return len(self.columns) - 1

    def map_columns(self, block: _Block, make: Callable[[Column, tuple[int, ...]], Column], elem: str) -> _Block:
        """A block of the same shape whose cell at each position is ``make(column, position)``."""
        cells = np.empty_like(block.cells)
        for position in np.ndindex(block.cells.shape):
            cells[position] = self.add(make(self.columns[int(block.cells[position])], position))
        return _Block(cells, elem)


# -- operator handlers: (reader, node, attributes) -> output blocks -----------------------


def _attributes(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _row_axis(axis: int, rank: int) -> int:
    """An ONNX axis (batch axis 0 included) as an axis of the per-row cell array."""
    full = axis + rank if axis < 0 else axis
    if full <= 0 or full >= rank:
        raise NotAPipeline("an operator works across rows (axis 0)")
    return full - 1


def _identity(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    return [r.block(node.input[0])]


def _concat(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    blocks = [r.block(x) for x in node.input]
    types = {b.elem_type for b in blocks}
    if len(types) != 1:
        raise NotAPipeline("Concat of tensors of different types")
    rank = blocks[0].cells.ndim + 1
    axis = _row_axis(int(a.get("axis", 1)), rank)  # type: ignore[call-overload]
    return [_Block(np.concatenate([b.cells for b in blocks], axis=axis), types.pop())]


def _gather(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    if node.input[0] in r.constants and node.input[1] in r.blocks:
        return _table_lookup(r, node)
    data = r.block(node.input[0])
    indices = r.constant(node.input[1]).astype(np.int64)
    axis = _row_axis(int(a.get("axis", 0)), data.cells.ndim + 1)  # type: ignore[call-overload]
    return [_Block(np.take(data.cells, indices, axis=axis), data.elem_type)]


def _table_lookup(r: _Reader, node: onnx.NodeProto) -> list[_Block]:
    """``Gather(table, codes)``: each code replaced by its entry of a constant table, and a
    code outside the table fails (how nbgov converts an OrdinalEncoder: the codes are
    positions, an unknown value one past the last, which only ``unknown_value`` has an
    entry for)."""
    table = np.asarray(r.constant(node.input[0]))
    if table.ndim != 1 or table.dtype.kind not in "iuf":
        raise NotAPipeline("Gather from a constant that is not one list of numbers")
    codes = r.block(node.input[1])
    elem = "int64" if table.dtype.kind in "iu" else "float" if table.dtype == np.float32 else "double"
    size = len(table)

    def entry(code: float) -> float | None:
        return float(table[int(code)]) if code.is_integer() and -size <= code < size else None

    def make(column: Column, _: tuple[int, ...]) -> Column:
        if isinstance(column, Feature) and isinstance(column.encoder, LabelCode) and not column.steps and not column.encoder.strict:
            mapping = tuple((key, value) for key, code in column.encoder.mapping if (value := entry(code)) is not None)
            default = entry(column.encoder.default)
            if len(mapping) == len(column.encoder.mapping):  # a key outside the table would fail, unread
                code = LabelCode(mapping, math.nan if default is None else default, strict=default is None)
                return Feature(column.source, code, elem_type=elem)
        if isinstance(column, Mixed) and column.code is not None:
            known = tuple(key for key, code in column.code.mapping if entry(code) is not None)
            fails = entry(column.code.default) is None
            vocabulary = Vocabulary(column.code.source, "OrdinalEncoder", known) if fails else None
            return Mixed(column.sources, "OrdinalEncoder(numeric categories)", elem, fails, vocabulary=vocabulary)
        return Mixed(frozenset(_sources(column)), "Gather", elem, True)

    return [r.map_columns(codes, make, elem)]


def _feature_extractor(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    data = r.block(node.input[0])
    indices = r.constant(node.input[1]).astype(np.int64).ravel()
    return [_Block(np.take(data.cells, indices, axis=-1), data.elem_type)]


def _slice(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    data = r.block(node.input[0])
    starts = r.constant(node.input[1]).astype(np.int64).ravel()
    ends = r.constant(node.input[2]).astype(np.int64).ravel()
    rank = data.cells.ndim + 1
    axes = (
        r.constant(node.input[3]).astype(np.int64).ravel()
        if len(node.input) > 3 and node.input[3]
        else np.arange(len(starts))
    )
    steps = (
        r.constant(node.input[4]).astype(np.int64).ravel()
        if len(node.input) > 4 and node.input[4]
        else np.ones(len(starts), dtype=np.int64)
    )
    index: list[slice] = [slice(None)] * data.cells.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[_row_axis(int(axis), rank)] = slice(int(start), int(end), int(step))
    return [_Block(data.cells[tuple(index)], data.elem_type)]


def _reshape(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    data = r.block(node.input[0])
    shape = [int(v) for v in r.constant(node.input[1]).ravel()]
    if not shape or shape[0] not in (-1, 0) or (shape[0] == -1 and -1 in shape[1:]):
        raise NotAPipeline("Reshape changes the number of rows")
    row = [data.cells.shape[i - 1] if v == 0 and i > 0 else v for i, v in enumerate(shape)][1:]
    try:
        return [_Block(data.cells.reshape(row), data.elem_type)]
    except ValueError:
        raise NotAPipeline("Reshape to a shape that does not fit one row") from None


def _flatten(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    data = r.block(node.input[0])
    if int(a.get("axis", 1)) != 1:  # type: ignore[call-overload]
        raise NotAPipeline("Flatten across rows")
    return [_Block(data.cells.reshape(-1), data.elem_type)]


def _squeeze(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    data = r.block(node.input[0])
    raw = a.get("axes")
    if raw is None and len(node.input) > 1 and node.input[1]:
        raw = list(r.constant(node.input[1]).ravel())
    if raw is None:
        raise NotAPipeline(f"{node.op_type} without explicit axes")
    axes = [int(v) for v in raw]  # type: ignore[attr-defined]
    cells = data.cells
    if node.op_type == "Squeeze":
        rank = cells.ndim + 1
        cells = np.squeeze(cells, axis=tuple(_row_axis(x, rank) for x in axes))
    else:
        rank = cells.ndim + 1 + len(axes)
        for axis in sorted(x + rank if x < 0 else x for x in axes):
            if axis == 0:
                raise NotAPipeline("Unsqueeze in front of the rows")
            cells = np.expand_dims(cells, axis - 1)
    return [_Block(cells, data.elem_type)]


def _cast(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    data = r.block(node.input[0])
    target = _ELEM_NAMES.get(int(a["to"]))  # type: ignore[call-overload]
    if target is None:
        raise NotAPipeline("Cast to an unsupported type")
    if target == data.elem_type:
        return [data]

    def make(column: Column, _: tuple[int, ...]) -> Column:
        if isinstance(column, Mixed):
            return replace(column, elem_type=target)
        if column.elem_type == "string" or target in ("string", "bool"):
            return Mixed(frozenset([column.source]), f"Cast({column.elem_type}->{target})", target, True)
        if isinstance(column.encoder, LabelCode) and column.elem_type == "int64" and target in ("float", "double"):
            return replace(column, elem_type=target)  # small integer codes convert exactly
        return column.then(CastTo(target), target)

    return [r.map_columns(data, make, target)]


def _per_cell(values: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A constant broadcast over one row (a leading batch dimension of 1 is dropped)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == len(shape) + 1 and arr.shape[0] == 1:
        arr = arr[0]
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        raise NotAPipeline(f"{what} parameters do not fit the row") from None


def _float_elem(block: _Block, op: str) -> str:
    if block.elem_type not in ("float", "double"):
        raise NotAPipeline(f"{op} on {block.elem_type} values")
    return block.elem_type


def _scaler(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    data = r.block(node.input[0])
    shape = data.cells.shape
    offset = _per_cell(np.asarray(a.get("offset") or [0.0]), shape, "Scaler")
    scale = _per_cell(np.asarray(a.get("scale") or [1.0]), shape, "Scaler")
    if data.elem_type in ("int64", "int32"):
        first: tuple[Step, ...] = (CastTo("float"),)  # C++: integer - float is float arithmetic
        dtype = "float"
    else:
        first, dtype = (), _float_elem(data, "Scaler")

    def make(column: Column, at: tuple[int, ...]) -> Column:
        if isinstance(column, Mixed):
            return replace(column, elem_type="float")
        steps = first + (
            Arith("-", float(np.float32(offset[at])), dtype),
            Arith("*", float(np.float32(scale[at])), dtype),
        )
        if dtype == "double":
            steps += (CastTo("float"),)
        return replace(column, steps=column.steps + steps, elem_type="float")

    return [r.map_columns(data, make, "float")]


_ARITH = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}


def _arith(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    left, right = node.input[0], node.input[1]
    constant_first = left in r.constants
    data = r.block(right if constant_first else left)
    values = r.constant(left if constant_first else right)
    dtype = _float_elem(data, node.op_type)
    per = _per_cell(values, data.cells.shape, node.op_type)
    op = _ARITH[node.op_type]

    def make(column: Column, at: tuple[int, ...]) -> Column:
        if isinstance(column, Mixed):
            return column
        return column.then(Arith(op, float(per[at]), dtype, constant_first, node.op_type))

    return [r.map_columns(data, make, dtype)]


def _imputer(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    data = r.block(node.input[0])
    if "imputed_value_floats" not in a:
        raise NotAPipeline("Imputer on integers")
    dtype = _float_elem(data, "Imputer")
    values = _per_cell(np.asarray(a["imputed_value_floats"]), data.cells.shape, "Imputer")
    missing = float(a.get("replaced_value_float", 0.0))  # type: ignore[arg-type]

    def make(column: Column, at: tuple[int, ...]) -> Column:
        if isinstance(column, Mixed):
            return column
        return column.then(Impute(missing, float(values[at]), dtype))

    return [r.map_columns(data, make, dtype)]


_MASKS = ("IsNaN", "Equal")  # read only as the condition of a Where imputation


def _is_missing(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    """``IsNaN(x)`` or ``Equal(x, c)``: a mask, read only as the condition of an imputation."""
    r.block(node.input[0])
    if node.op_type == "IsNaN":
        r.missing[node.output[0]] = (node.input[0], math.nan)
    else:
        value = r.constant(node.input[1])
        if value.size != 1:
            raise NotAPipeline("Equal to more than one value")
        r.missing[node.output[0]] = (node.input[0], float(value.reshape(-1)[0]))
    return []


def _where(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    """``Where(IsNaN(x), values, x)``: an imputer (how nbgov converts SimpleImputer in double)."""
    condition, then, otherwise = node.input
    mask = r.missing.get(condition)
    if mask is None or mask[0] != otherwise:
        raise NotAPipeline("Where is not an imputation (x where x is missing)")
    data = r.block(otherwise)
    dtype = _float_elem(data, "Where")
    values = _per_cell(r.constant(then), data.cells.shape, "Where")

    def make(column: Column, at: tuple[int, ...]) -> Column:
        return column if isinstance(column, Mixed) else column.then(Impute(mask[1], float(values[at]), dtype))

    return [r.map_columns(data, make, dtype)]


def _binarizer(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    data = r.block(node.input[0])
    dtype = _float_elem(data, "Binarizer")
    threshold = float(a.get("threshold", 0.0))  # type: ignore[arg-type]

    def make(column: Column, _: tuple[int, ...]) -> Column:
        return column if isinstance(column, Mixed) else column.then(Binarize(threshold, dtype))

    return [r.map_columns(data, make, dtype)]


def _normalizer(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    data = r.block(node.input[0])
    sources: set[Source] = set()
    for index in data.cells.ravel():
        sources |= _sources(r.columns[int(index)])
    norm = a.get("norm", b"MAX")
    op = f"Normalizer({norm.decode() if isinstance(norm, bytes) else norm})"
    mixed = Mixed(frozenset(sources), op)
    return [r.map_columns(data, lambda column, at: mixed, "float")]


def _one_hot(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    data = r.block(node.input[0])
    strict = int(a.get("zeros", 1)) == 0  # type: ignore[call-overload]
    categories: tuple[str, ...] = tuple(_text(c) for c in (a.get("cats_strings") or []))  # type: ignore[attr-defined]
    count = len(categories) or len(a.get("cats_int64s") or [])  # type: ignore[arg-type]
    cells = np.empty(data.cells.shape + (count,), dtype=np.int64)
    numbers = {float(c) for c in (a.get("cats_int64s") or [])}  # type: ignore[attr-defined]
    for position in np.ndindex(data.cells.shape):
        column = r.columns[int(data.cells[position])]
        vocabulary = None
        if strict and isinstance(column, Mixed) and column.code is not None:  # numbers looked up first
            known = tuple(key for key, code in column.code.mapping if code in numbers)
            vocabulary = Vocabulary(column.code.source, "OneHotEncoder", known)
        for k in range(count):
            if isinstance(column, Feature) and categories and column.elem_type == "string" and _raw(column):
                made: Column = Feature(column.source, OneHot(categories[k], categories, strict))
            else:
                made = Mixed(frozenset(_sources(column)), "OneHotEncoder(numeric categories)", "float", strict, vocabulary=vocabulary)
            cells[position + (k,)] = r.add(made)
    return [_Block(cells, "float")]


def _label_encoder(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    data = r.block(node.input[0])
    if "keys_tensor" in a:
        return [_number_codes(r, data, a)]
    keys = a.get("keys_strings")
    if keys is not None and "values_int64s" in a:
        values = [float(v) for v in a["values_int64s"]]  # type: ignore[attr-defined]
        default = float(a.get("default_int64", -1))  # type: ignore[arg-type]
        elem = "int64"
    elif keys is not None and "values_floats" in a:
        values = [float(v) for v in a["values_floats"]]  # type: ignore[attr-defined]
        default = float(a.get("default_float", -0.0))  # type: ignore[arg-type]
        elem = "float"
    else:
        keys, values, default, elem = None, [], math.nan, "int64"
    if keys is not None and any(abs(v) >= 2**24 for v in values + [default]):
        keys = None  # codes a float cannot hold exactly
    mapping = tuple(zip((_text(k) for k in keys), values)) if keys is not None else ()  # type: ignore[attr-defined]

    def make(column: Column, _: tuple[int, ...]) -> Column:
        if keys is not None and isinstance(column, Feature) and column.elem_type == "string" and _raw(column):
            return Feature(column.source, LabelCode(mapping, default), elem_type=elem)
        return Mixed(frozenset(_sources(column)), "LabelEncoder", elem)

    return [r.map_columns(data, make, elem)]


def _number_codes(r: _Reader, data: _Block, a: dict[str, object]) -> _Block:
    """LabelEncoder (opset 4) of numbers to int64 codes: how nbgov looks up the categories
    of a number column (``NumberCode``); read as a column onnxruntime computes."""
    keys = numpy_helper.to_array(a["keys_tensor"]).ravel()  # type: ignore[arg-type]
    values = numpy_helper.to_array(a["values_tensor"]).ravel()  # type: ignore[arg-type]
    default = numpy_helper.to_array(a["default_tensor"]).ravel() if "default_tensor" in a else None  # type: ignore[arg-type]
    if keys.dtype.kind not in "iuf" or values.dtype.kind not in "iu" or default is None or len(default) != 1:
        raise NotAPipeline("LabelEncoder of numbers to anything but int64 codes")
    mapping = tuple(zip((float(k) for k in keys), (float(v) for v in values)))

    def make(column: Column, _: tuple[int, ...]) -> Column:
        if isinstance(column, Feature) and column.elem_type in ("float", "double") and _raw(column):
            return Mixed(frozenset([column.source]), "LabelEncoder", "int64", code=NumberCode(column.source, mapping, float(default[0])))
        return Mixed(frozenset(_sources(column)), "LabelEncoder", "int64")

    return r.map_columns(data, make, "int64")


def _feature_vectorizer(r: _Reader, node: onnx.NodeProto, a: dict[str, object]) -> list[_Block]:
    parts = []
    for name in node.input:
        block = r.block(name)
        if block.cells.ndim != 1:
            raise NotAPipeline("FeatureVectorizer over a tensor that is not [N, k]")
        if block.elem_type != "float":
            block = _cast(r, helper.make_node("Cast", [name], ["_"], to=onnx.TensorProto.FLOAT), {"to": onnx.TensorProto.FLOAT})[0]
        parts.append(block.cells)
    return [_Block(np.concatenate(parts), "float")]


_HANDLERS: dict[str, Callable[[_Reader, onnx.NodeProto, dict[str, object]], list[_Block]]] = {
    "Identity": _identity,
    "Concat": _concat,
    "Gather": _gather,
    "ArrayFeatureExtractor": _feature_extractor,
    "Slice": _slice,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Squeeze": _squeeze,
    "Unsqueeze": _squeeze,
    "Cast": _cast,
    "Scaler": _scaler,
    "Add": _arith,
    "Sub": _arith,
    "Mul": _arith,
    "Div": _arith,
    "Imputer": _imputer,
    "IsNaN": _is_missing,
    "Equal": _is_missing,
    "Where": _where,
    "Binarizer": _binarizer,
    "Normalizer": _normalizer,
    "OneHotEncoder": _one_hot,
    "LabelEncoder": _label_encoder,
    "FeatureVectorizer": _feature_vectorizer,
}


def _number_text(value: float) -> str:
    """``3`` for an integer, ``2.5``, ``nan``: as a category is read back."""
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _raw(column: Feature) -> bool:
    return column.encoder is None and not column.steps


def _sources(column: Column) -> frozenset[Source]:
    return column.sources if isinstance(column, Mixed) else frozenset([column.source])


def _head_model(
    model: onnx.ModelProto, name: str, elem: str, width: int, nodes: list[onnx.NodeProto]
) -> onnx.ModelProto:
    """The model proper alone: ``nodes`` over one ``[N, width]`` input ``name``."""
    used = {x for n in nodes for x in n.input}
    graph = helper.make_graph(
        nodes,
        model.graph.name or "head",
        [helper.make_tensor_value_info(name, _ELEM_CODES[elem], [None, width])],
        list(model.graph.output),
        [t for t in model.graph.initializer if t.name in used],
    )
    head = helper.make_model(graph, opset_imports=list(model.opset_import))
    head.ir_version = model.ir_version
    return head
