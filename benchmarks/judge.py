"""One command that judges a candidate model the way the shipped one was chosen: every figure
of the row in RESULTS' tables ("Averaging weights"), from the repo's own commands.

    python benchmarks/judge.py runs/soups/soup4.safetensors            # export, then judge
    python benchmarks/judge.py runs/default_stage18/last.pt --name s18 --no-robustness
    python benchmarks/judge.py personcut                               # the shipped model
    python benchmarks/judge.py runs/default_stage29/last.pt --name s29 \
        --rule benchmarks/ship_rule.json --against benchmarks/results/judge_s22_s26.json
    python benchmarks/judge.py --check runs/judge/s29.json \
        --rule benchmarks/ship_rule.json --against benchmarks/results/judge_s22_s26.json
    python benchmarks/judge.py --table benchmarks/results/judge_s51_soup.json runs/judge/s61*.json \
        --rule benchmarks/ship_rule.json --against benchmarks/results/judge_s51_soup.json

Steps (each a command anyone can run alone): `personcut export` (for .pt / .safetensors),
`personcut evaluate --edges` on persons-val (person IoU overall and per source, boundary F,
alpha MAE), `benchmarks/false_people.py` (share of held-out person-free photos with > 1 %
called person), `benchmarks/robustness.py` (person IoU on changed copies of persons-val),
`benchmarks/eval_large.py` (persons-val enlarged 3x: "x3") and the share of the README's group
photo marked person. Writes ``--out-dir/NAME.json`` with the row and each step's own JSON beside
it (``NAME.evaluate.json`` ...), and prints the row.

``--rule`` checks the row against a replacement rule written before the candidate was trained
(a JSON file: figures it must reach, and figures where it must be no worse than ``--against``,
the shipped model's row) and exits 1 if any line fails, so the choice to ship is a command, not
a judgement made after seeing the numbers. persons-val is for development: use the row to
compare candidates, not to tune to it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VAL = ROOT.parent / "shared" / "data" / "persons-val"


def run(args: list[str], log: Path) -> str:
    """Run one step, its stderr (progress bars) to ``log``; its stdout back. A failed step
    stops the judging with its own message."""
    with log.open("w") as err:
        done = subprocess.run(args, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    if done.returncode:
        sys.exit(f"judge: {' '.join(args[:3])} ... failed (exit {done.returncode}); see {log}")
    return done.stdout


def check_rule(
    row: dict[str, float], rule: dict[str, dict[str, float | str]], shipped: dict | None
) -> list[tuple[str, bool]]:
    """Each line of ``rule`` as (what it asks and the candidate's figure, whether ``row`` meets
    it). The rule's sections:
    ``at_least`` / ``at_most`` {figure: bound}; ``than_shipped`` {figure: ">=" or "<="}, the
    row against ``shipped``. A figure missing from a row is an error, not a pass."""
    known = {"at_least", "at_most", "than_shipped", "why"}
    if set(rule) - known:
        raise ValueError(f"unknown rule sections {sorted(set(rule) - known)}; known: {known}")

    def figure(r: dict, key: str, whose: str) -> float:
        if key not in r:
            raise KeyError(f"the {whose} row has no {key!r} (run judge without --no-robustness?)")
        return float(r[key])

    lines = []

    def line(key: str, way: str, bound: float, against: str) -> None:
        mine = figure(row, key, "candidate")
        ok = mine >= bound if way == ">=" else mine <= bound
        lines.append((f"{key} {way} {against} (candidate: {mine:.4f})", ok))

    for key, bound in rule.get("at_least", {}).items():
        line(key, ">=", float(bound), f"{bound}")
    for key, bound in rule.get("at_most", {}).items():
        line(key, "<=", float(bound), f"{bound}")
    for key, way in rule.get("than_shipped", {}).items():
        if shipped is None:
            raise ValueError("the rule compares with the shipped model: give --against")
        # Rows judged before the eighteenth session ran one pass; the default mode has added
        # the mirror image's since, which lifts every figure: compare like with like.
        if row.get("mirror", False) != shipped.get("mirror", False):
            raise ValueError(
                "the candidate and the shipped rows were scored with different passes "
                f"(mirror pass: {row.get('mirror', False)} against "
                f"{shipped.get('mirror', False)}); judge the shipped model again"
            )
        if way not in (">=", "<="):
            raise ValueError(f"than_shipped.{key} must be '>=' or '<=', got {way!r}")
        theirs = figure(shipped, key, "shipped")
        line(key, way, theirs, f"shipped's {theirs:.4f}")
    return lines


def report_rule(row: dict, rule_path: Path, against: Path | None) -> int:
    """Print the rule's lines for ``row``; 0 if all pass, else 1."""
    rule = json.loads(rule_path.read_text())
    shipped = json.loads(against.read_text()) if against else None
    lines = check_rule(row, rule, shipped)
    for what, ok in lines:
        print(f"{'PASS' if ok else 'FAIL'} {what}")
    passed = all(ok for _, ok in lines)
    print(f"{row.get('name', 'candidate')}: {'passes' if passed else 'fails'} {rule_path.name}")
    return 0 if passed else 1


COLUMNS = (
    "persons-val | ccp IoU / bF | coco IoU / bF | picsart IoU / bF | boundary F | alpha MAE | "
    "false people | turned 90 / 180 | grey / dark / backlit | x3 | rule"
)


def table_row(row_path: Path, rule: dict | None = None, shipped: dict | None = None) -> str:
    """One line of RESULTS' stage tables (header ``COLUMNS``) from a judged row. Rows judged
    before the row carried each source's boundary F read it from the evaluate JSON beside them
    (``NAME.evaluate.json`` in runs/judge, ``evaluate_NAME.json`` in benchmarks/results)."""
    row = json.loads(row_path.read_text())
    name = row["name"]
    if "ccp_boundary_f" not in row:
        for beside in (f"{name}.evaluate.json", f"evaluate_{name}.json"):
            if (row_path.parent / beside).is_file():
                by_source = json.loads((row_path.parent / beside).read_text())["by_source"]
                row.update({f"{s}_boundary_f": f["boundary_f"] for s, f in by_source.items()})
    negatives = 923  # held-out person-free photos: false_people is a share of them
    cells = [
        f"{row['person_iou']:.5f}",
        *(f"{row[s]:.4f} / {row[f'{s}_boundary_f']:.3f}" for s in ("ccp", "coco", "picsart")),
        f"{row['boundary_f']:.4f}",
        f"{row['alpha_mae']:.4f}",
        f"{round(row['false_people'] * negatives)}",
        f"{row['turn90']:.3f} / {row['turn180']:.3f}",
        f"{row['gray']:.3f} / {row['dark']:.3f} / {row['backlit']:.3f}",
        f"{row['x3']:.4f}",
    ]
    verdict = ""
    if rule is not None:
        failed = sorted({what.split()[0] for what, ok in check_rule(row, rule, shipped) if not ok})
        verdict = "FAIL " + ", ".join(failed) if failed else "PASS"
    return f"| {name} | " + " | ".join(cells) + f" | {verdict} |"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model", nargs="?", help=".pt, .safetensors, .onnx or a shipped name")
    p.add_argument("--name", help="the row's name; default: the file's parent and stem")
    p.add_argument("--data", type=Path, default=VAL, help="image/mask folder to score on")
    p.add_argument("--negatives", type=Path, help="person-free photos (false_people's --data)")
    p.add_argument("--no-robustness", action="store_true", help="skip the slowest step")
    p.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "judge", help="(git-ignored)")
    p.add_argument("--rule", type=Path, help="replacement rule (JSON) the row must pass")
    p.add_argument("--against", type=Path, help="the shipped model's row (a judge JSON)")
    p.add_argument("--check", type=Path, help="check this judged row against --rule; no judging")
    p.add_argument(
        "--table", type=Path, nargs="+", help="print judged rows as RESULTS' table; no judging"
    )
    args = p.parse_args()
    if args.table:
        rule = json.loads(args.rule.read_text()) if args.rule else None
        shipped = json.loads(args.against.read_text()) if args.against else None
        print(f"| model (mirror pass) | {COLUMNS} |\n|" + " --- |" * (COLUMNS.count("|") + 2))
        for row_path in args.table:
            print(table_row(row_path, rule, shipped))
        return 0
    if args.check:
        if not args.rule:
            p.error("--check needs --rule")
        return report_rule(json.loads(args.check.read_text()), args.rule, args.against)
    if not args.model:
        p.error("give a model to judge (or --check ROW.json)")

    model = Path(args.model)
    name = args.name or (f"{model.parent.name}_{model.stem}" if model.suffix else args.model)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    py, log = sys.executable, out / f"{name}.log"
    if model.suffix in (".pt", ".safetensors"):
        onnx = out / f"{name}.onnx"
        run([py, "-m", "personcut", "export", str(model), "-o", str(onnx)], log)
        scored = str(onnx)
    else:
        scored = args.model

    cli = [py, "-m", "personcut", "evaluate", "--edges", "--model", scored]
    evaluation = json.loads(run([*cli, "--data", str(args.data)], log))
    (out / f"{name}.evaluate.json").write_text(json.dumps(evaluation, indent=1) + "\n")
    from personcut.segmenter import PASSES

    row: dict[str, object] = {"name": name, "model": args.model}
    row["mirror"] = PASSES["balanced"][1]  # the default mode's passes, as every step runs them
    row["person_iou"] = evaluation["person_iou"]
    for source, figures in evaluation.get("by_source", {}).items():
        row[source] = figures["person_iou"]
        row[f"{source}_boundary_f"] = figures["boundary_f"]
    row["boundary_f"], row["alpha_mae"] = evaluation["boundary_f"], evaluation["mae"]

    def bench(script: str, *extra: str) -> dict:
        """benchmarks/SCRIPT.py on the scored model, its JSON kept as NAME.SCRIPT.json."""
        result = out / f"{name}.{script}.json"
        run([py, str(HERE / f"{script}.py"), "--model", scored, *extra, "--out", str(result)], log)
        return json.loads(result.read_text())

    data = ("--data", str(args.data))
    negatives = ("--data", str(args.negatives)) if args.negatives else ()
    row["false_people"] = bench("false_people", *negatives)["all"]["share_over_limit"]
    if not args.no_robustness:
        changed = bench("robustness", *data)["person_iou"]
        row.update({k: v for k, v in changed.items() if k != "plain"})
        row["x3"] = bench("eval_large", *data)["person_iou"]["all"]

    from personcut import Segmenter

    group = Segmenter(scored).predict_mask(ROOT / "examples" / "group.jpg")
    row["group_photo_marked"] = float((group > 0.5).mean())

    (out / f"{name}.json").write_text(json.dumps(row, indent=1) + "\n")
    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    if args.rule:
        return report_rule(row, args.rule, args.against)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
