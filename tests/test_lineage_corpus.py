"""Real-shaped notebooks are recorded exactly and replay exactly, again and again.

The notebooks follow the shapes of library documentation: scikit-learn's iris and
pipeline examples (a ``Bunch``, a ColumnTransformer inside a Pipeline, a seeded
forest, a displayed result), skl2onnx's tutorial (``convert_sklearn`` without a
name, so a fresh uuid lands in ``graph.name``; the model written to a file and run
by an onnxruntime session) and a pandas tips collection (groupby, merge, pivot,
a CSV written then read, a list changed through another name), polars' and pyarrow's
(eager and lazy frames over files, a partitioned dataset with fixed part names) and
IPython's magics (``%%time``, ``%%writefile`` then ``%run``, ``%%bash`` and ``!`` writing
files a later cell reads, a top-level ``await``) and matplotlib's gallery (pyplot and
figures saved as PNG, SVG and PDF with the inline backend, an image read back). Each is recorded
by ``nbgov run``; almost no recorded write may be weak, and five replays in a row
must each exit 0 without ``--allow-unverifiable``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nbgov.replay.source import load_log
from tests.fixtures.replay import invoke, record

SKLEARN_DOCS = (
    "import numpy as np\nimport pandas as pd\nfrom sklearn.datasets import load_iris\niris = load_iris(as_frame=True)",
    ("X, y = iris.data, iris.target\n"
    "from sklearn.model_selection import train_test_split\n"
    "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)"),
    ("from sklearn.compose import ColumnTransformer, make_column_selector\n"
    "from sklearn.pipeline import Pipeline\n"
    "from sklearn.preprocessing import StandardScaler\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "pre = ColumnTransformer([('num', StandardScaler(), make_column_selector(dtype_include='number'))])\n"
    "clf = Pipeline([('pre', pre), ('lr', LogisticRegression(max_iter=500))]).fit(X_train, y_train)"),
    "clf.score(X_test, y_test)",
    ("from sklearn.ensemble import RandomForestClassifier\n"
    "forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X_train, y_train)\n"
    "importances = pd.Series(forest.feature_importances_, index=X.columns).sort_values()"),
    ("class Thresholder:\n"
    "    def __init__(self, cut):\n"
    "        self.cut = cut\n"
    "    def apply(self, p):\n"
    "        return (p > self.cut).astype(int)\n"
    "rule = Thresholder(0.5)\n"
    "flags = rule.apply(forest.predict_proba(X_test)[:, 1])"),
    "flags.sum()",
)

SKL2ONNX_TUTORIAL = (
    ("import numpy as np\nfrom sklearn.datasets import load_iris\nfrom sklearn.model_selection import train_test_split\n"
    "X, y = load_iris(return_X_y=True)\nX = X.astype(np.float32)\n"
    "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)"),
    "from sklearn.linear_model import LogisticRegression\nclr = LogisticRegression(max_iter=500).fit(X_train, y_train)",
    ("from skl2onnx import convert_sklearn\nfrom skl2onnx.common.data_types import FloatTensorType\n"
    "onx = convert_sklearn(clr, initial_types=[('float_input', FloatTensorType([None, 4]))])"),
    ("import onnxruntime as rt\n"
    "sess = rt.InferenceSession(onx.SerializeToString(), providers=['CPUExecutionProvider'])\n"
    "input_name = sess.get_inputs()[0].name\nlabel_name = sess.get_outputs()[0].name\n"
    "pred_onx = sess.run([label_name], {input_name: X_test})[0]"),
    "(pred_onx == clr.predict(X_test)).mean()",
)

PANDAS_TIPS = (
    ("import pandas as pd\nimport numpy as np\n"
    "sales = pd.DataFrame({'region': ['north', 'south', 'east', 'west'] * 25,\n"
    "                      'units': np.arange(100) % 7, 'price': np.linspace(1.0, 5.0, 100)})"),
    ("sales['revenue'] = sales['units'] * sales['price']\n"
    "by_region = sales.groupby('region', as_index=False).agg(units=('units', 'sum'), revenue=('revenue', 'sum'))"),
    ("targets = pd.DataFrame({'region': ['north', 'south', 'east', 'west'], 'target': [80, 90, 70, 60]})\n"
    "merged = by_region.merge(targets, on='region')\nmerged['hit'] = merged['units'] >= merged['target']"),
    "pivot = sales.pivot_table(index='region', columns=sales['units'] > 3, values='revenue', aggfunc='mean')",
    "merged.to_csv('regions.csv', index=False)",
    "again = pd.read_csv('regions.csv')\nagain.describe()",
    "notes = ['first']\nalias = notes",
    "alias.append('through another name')\nlen(notes)",
)

POLARS_ARROW = (
    "import numpy as np\nimport polars as pl\nimport pyarrow.parquet as pq\nimport pyarrow.dataset as ds",
    ("rng = np.random.default_rng(42)\n"
    "df = pl.DataFrame({'city': rng.choice(['a', 'b', 'c'], 300), 'temp': rng.normal(15, 5, 300).round(2),\n"
    "                   'day': np.arange(300) % 30})\n"
    "df.write_csv('weather.csv')\ndf.write_parquet('weather.parquet')"),
    "summary = df.group_by('city').agg(pl.col('temp').mean().alias('mean_temp'), pl.len().alias('n')).sort('city')\nsummary",
    ("lazy = pl.scan_csv('weather.csv').filter(pl.col('temp') > 15).group_by('day').agg(pl.col('temp').max()).sort('day')\n"
    "hot = lazy.collect()"),
    "fahr = pl.scan_parquet('weather.parquet').select('city', (pl.col('temp') * 9 / 5 + 32).alias('f')).collect()\nfahr.shape",
    ("pq.write_to_dataset(df.to_arrow(), 'weather_ds', partition_cols=['city'], basename_template='part-{i}.parquet',\n"
    "                    existing_data_behavior='delete_matching')"),
    ("back = ds.dataset('weather_ds', format='parquet', partitioning='hive').to_table(filter=ds.field('day') < 5)\n"
    "len(back.to_pandas())"),
)

IPYTHON_MAGICS = (
    "%%time\ntotal = sum(i * i for i in range(10000))",
    "%%writefile helpers.py\nSCALE = 3\n\ndef scale(xs):\n    return [x * SCALE for x in xs]\n\nscaled = scale([1, 2, 3])",
    "%run helpers.py",
    "doubled = scale([10, 20])\nscaled, doubled",
    "%%bash\necho 'a,b' > made_by_bash.csv\necho '1,2' >> made_by_bash.csv",
    "!echo hello > shell_out.txt",
    ("import pandas as pd\nmade = pd.read_csv('made_by_bash.csv')\n"
    "greeting = open('shell_out.txt').read().strip()\nmade, greeting"),
    ("import asyncio\nasync def twice(x):\n    await asyncio.sleep(0.01)\n    return x * 2\n"
    "values = await asyncio.gather(*(twice(i) for i in range(4)))\nvalues"),
)

MATPLOTLIB_GALLERY = (
    ("%matplotlib inline\nimport numpy as np\nimport matplotlib as mpl\nimport matplotlib.pyplot as plt\n"
    "mpl.rcParams['svg.hashsalt'] = 'nbgov'  # else an SVG's ids are random"),
    ("x = np.linspace(0, 2 * np.pi, 100)\nplt.plot(x, np.cos(x))\nplt.title('cos')\n"
    "plt.savefig('cos.png', dpi=50)\nplt.savefig('cos.svg', metadata={'Date': None})"),
    ("fig, axes = plt.subplots(1, 2, figsize=(6, 2))\naxes[0].bar(['a', 'b'], [3, 5])\n"
    "axes[1].scatter(x[:10], x[:10] ** 2)\nfig.tight_layout()"),
    "fig.savefig('two.png', dpi=50)\nfig.savefig('two.pdf', metadata={'CreationDate': None})\nplt.close(fig)",
    "from matplotlib.image import imread\nimread('two.png').shape",
)

CORPUS = {"sklearn_docs": SKLEARN_DOCS, "skl2onnx_tutorial": SKL2ONNX_TUTORIAL, "pandas_tips": PANDAS_TIPS,
          "polars_arrow": POLARS_ARROW, "ipython_magics": IPYTHON_MAGICS, "matplotlib_gallery": MATPLOTLIB_GALLERY}


@pytest.mark.kernel
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", list(CORPUS))
def test_a_real_shaped_notebook_is_exact_and_replays_five_times_in_a_row(name: str, tmp_path: Path) -> None:
    path = record(tmp_path / f"{name}.ipynb", *CORPUS[name])
    records = load_log(path).execution_records()
    assert len(records) == len(CORPUS[name]) and all(r.status == "ok" for r in records)
    written = [(w.name, w.fingerprint) for r in records for w in r.writes]
    written += [(f"Out[{r.execution_count}]", r.result) for r in records if r.result is not None]
    weak = [(name, fp.reason) for name, fp in written if fp.weak]
    assert len(written) >= len(records) and len(weak) <= len(written) // 100, weak  # under 1% weak
    for attempt in range(5):
        replayed = invoke("replay", path)
        assert replayed.exit_code == 0, f"replay {attempt + 1}: {replayed.output}"
