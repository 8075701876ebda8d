"""kmm.eval.pass_cost: per-shape pass timing used to pick a generator shape (issue #16)."""
from kmm.eval import pass_cost


def test_pass_cost_reports_every_shape_against_the_transformer(tmp_path):
    shapes = {k: pass_cost.SHAPES[k] for k in ("kmm (shipped shape)", "transformer", "kmm shared projections, ff 256")}
    out = pass_cost.measure(shapes, batch=1, tokens=8, passes=1, repeats=1)
    rows = out["shapes"]
    assert set(rows) == set(shapes)
    assert rows["transformer"]["vs_transformer"] == 1.0
    assert all(r["median_ms"] > 0 for r in rows.values())
    # the shared block halves the Mamba projections and the feed-forward here: fewer block weights than shipped
    assert rows["kmm shared projections, ff 256"]["block_params_m"] < rows["kmm (shipped shape)"]["block_params_m"]
    assert pass_cost.main(["--rows", "1x4", "--passes", "1", "--repeats", "1", "--json", str(tmp_path / "p.json")]) == 0
    assert (tmp_path / "p.json").is_file()
