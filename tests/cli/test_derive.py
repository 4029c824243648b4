"""``pdarts derive`` through the real command (its rejections are cases of tests/test_bad_inputs.py)."""

import json

from pdarts.genotype import load_genotype

from .. import helpers


def test_writes_genotype_and_all_caps(tmp_path, run_pdarts):
    alphas, out, caps = tmp_path / "alphas.json", tmp_path / "sub" / "genotype.json", tmp_path / "caps.json"
    alphas.write_text(json.dumps(helpers.alphas()))
    proc = run_pdarts("derive", "--alphas", alphas, "--max-skip", 2, "--out", out, "--all-caps", caps)
    assert proc.returncode == 0, proc.stderr
    genotype = load_genotype(out)
    assert all(op == "sep_conv_3x3" for op, _ in genotype.normal + genotype.reduce)
    # node 3 keeps its two strongest edges: the last two (inputs 3 and 4)
    assert [src for _, src in genotype.normal[6:]] == [3, 4]
    data = json.loads(caps.read_text())
    assert [c["max_skip"] for c in data["caps"]] == list(range(9))
    assert data["caps"][2]["genotype"] == json.loads(out.read_text())
    assert not list(tmp_path.glob("**/.*.tmp"))
