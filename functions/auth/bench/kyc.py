"""Accuracy and latency of the KYC flow's steps, run in-process (no Ray, no platform).

    python3 functions/auth/bench/kyc.py                 # report set: 84 generated cases (seeds 0-83) of each card
                                                        # design (A, B, C), three degradation levels
    python3 functions/auth/bench/kyc.py --tune          # first tune thresholds on the tuning set (seeds 10000+) of
                                                        # designs A and B only, write functions/auth/kyc/thresholds.json,
                                                        # then run the report set with them

Design C is held out of all tuning (thresholds here, reading rules in the code): its column is how
the flow does on a card design it was not built against. P, the passport page, is not held out: the
passport reading (TD3 MRZ on the front, the page's shape) was developed against it.

The step classes and functions of ``functions/auth/kyc_steps.py`` are called as plain Python,
each model class's ``setup()`` once. Prints a table and writes bench/results/kyc.json.
Threads are capped at one (OpenCV, onnxruntime) so the numbers are per-core latencies and the
machine stays usable; the flow runs front/back and face/quality in parallel on separate replicas.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
ROOT = PROJECT.parents[1]
sys.path.insert(0, str(PROJECT))
os.environ.setdefault("OMP_NUM_THREADS", "1")
from kyc.synth import PASSPORTS, TUNING_DESIGNS  # noqa: E402 - needs the path above

REPORT_SEEDS = range(0, 84)
TUNING_SEEDS = range(10_000, 10_056)
HELD_OUT = ("C",)  # out of all tuning: thresholds here and reading rules in the code
SAME_PERSON_KINDS = ("genuine", "mrz_digit", "front_mismatch", "expired", "low_quality")


def load_steps() -> dict[str, Any]:
    import cv2
    import kyc_steps
    from kyc import ocr
    cv2.setNumThreads(1)
    ocr.engine(threads=1)
    steps: dict[str, Any] = {"decide": kyc_steps.kyc_decide}
    for name, cls in (("front", kyc_steps.KycFront), ("back", kyc_steps.KycBack), ("face", kyc_steps.KycFace),
                      ("quality", kyc_steps.KycQuality)):
        steps[name] = cls()
        steps[name].setup()
    return steps


def run_case(steps: dict[str, Any], case: Any) -> dict[str, Any]:
    """All five steps on one case; results and per-step wall times (ms)."""
    times: dict[str, float] = {}

    def timed(name: str, *args: Any) -> Any:
        start = time.perf_counter()
        out = steps[name](*args)
        times[name] = (time.perf_counter() - start) * 1000
        return out

    front = timed("front", case.front)  # a passport page has no back: its step gets None
    back = timed("back", case.back)
    face = timed("face", case.selfie, front)
    quality = timed("quality", case.selfie, front)
    decision = timed("decide", front, back, face, quality)
    times["serial"] = sum(times.values())
    times["critical_path"] = max(times["front"] + max(times["face"], times["quality"]), times["back"]) + times["decide"]
    return {"front": front, "back": back, "face": face, "quality": quality, "decision": decision, "ms": times}


def evaluate(seeds: range, label: str, designs: tuple[str, ...]) -> list[dict[str, Any]]:
    from kyc.cases import case_plan, make_case
    steps = load_steps()
    rows = []
    plan = [(design, *item) for design in designs for item in case_plan(seeds)]
    for i, (design, seed, level, kind) in enumerate(plan):
        case = make_case(seed, level, kind, design)
        out = run_case(steps, case)
        rows.append(summarise(case, out))
        print(f"\r{label}: {i + 1}/{len(plan)} cases", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return rows


def summarise(case: Any, out: dict[str, Any]) -> dict[str, Any]:
    printed = (case.printed or case.identity).document()
    mrz = out["back"].get("mrz") or out["front"].get("mrz") or {}  # a passport page carries its own
    fields = out["front"].get("fields") or {}
    codes = [r["code"] for r in out["decision"]["reasons"]]
    correct = out["decision"]["decision"] == case.expected_decision and all(c in codes for c in case.expected_reasons)
    checks = out["decision"].get("front_check") or {}
    return {
        "design": case.design, "seed": case.seed, "level": case.level, "kind": case.kind, "holder": case.identity.person,
        "selfie_person": case.selfie_person, "notes": case.notes,
        "front_card_found": out["front"].get("card_found", False),
        "back_card_found": out["back"].get("card_found", False) if case.back is not None else None,
        "mrz_exact": mrz.get("lines") == list(case.mrz), "mrz_valid": bool(mrz.get("valid")), "mrz_read": bool(mrz),
        "front_fields": {k: fields.get(k) == printed[k] for k in ("surname", "given_names", "birth_date",
                                                                   "document_number", "expiry_date")},
        # The MRZ's values found on a front that prints them (a tampered front or MRZ is meant not to match).
        "front_values_found": None if case.printed or case.kind == "mrz_digit" else {k: checks.get(k, {}).get("status") == "found"
                                                          for k in ("surname", "given_names", "birth_date",
                                                                    "document_number", "expiry_date")},
        "face_distance": out["face"].get("distance"), "replay_similarity": out["quality"].get("replay_similarity"),
        "sharpness": out["quality"].get("sharpness"), "brightness": out["quality"].get("brightness"),
        "expected": case.expected_decision, "expected_reasons": list(case.expected_reasons),
        "decision": out["decision"]["decision"], "reasons": codes, "correct": correct, "ms": out["ms"],
    }


# --- tuning ---------------------------------------------------------------------------------------

def _split(low_max: float, high_min: float) -> tuple[float, float]:
    """Bounds for a value that is low for one class and high for the other.

    No overlap: the gap is cut in thirds, the middle third is the review band. Overlap: the band
    covers it (everything between the lowest 'high' and the highest 'low' goes to review).
    """
    if low_max < high_min:
        gap = high_min - low_max
        return low_max + gap / 3, high_min - gap / 3
    return high_min - 0.005, low_max + 0.005


def tune(rows: list[dict[str, Any]]) -> dict[str, Any]:
    same = [r["face_distance"] for r in rows if r["kind"] in SAME_PERSON_KINDS and r["face_distance"] is not None]
    other = [r["face_distance"] for r in rows if r["kind"] == "other_person" and r["face_distance"] is not None]
    match_max, reject_min = _split(max(same), min(other))
    match_max = min(match_max, 0.6)  # never looser than dlib's published same-person bound
    copies = [r["replay_similarity"] for r in rows if r["kind"] == "replay" and r["replay_similarity"] is not None]
    shots = [r["replay_similarity"] for r in rows if r["kind"] != "replay" and r["replay_similarity"] is not None]
    replay = (max(shots) + min(copies)) / 2
    good = [r for r in rows if r["kind"] != "low_quality" and r["sharpness"] is not None]
    blurred = [r["sharpness"] for r in rows if "selfie_blurry" in r["expected_reasons"]]
    dark = [r["brightness"] for r in rows if "selfie_dark" in r["expected_reasons"]]
    blur_min = (max(blurred) * min(r["sharpness"] for r in good)) ** 0.5  # geometric midpoint: sharpness is scale-like
    brightness_min = (max(dark) + min(r["brightness"] for r in good)) / 2
    values = {"face_match_max": round(match_max, 3), "face_reject_min": round(reject_min, 3),
              "replay_min_similarity": round(replay, 3), "blur_min": round(blur_min, 1),
              "brightness_min": round(brightness_min, 1)}
    observed = {"same_person_distance": [round(min(same), 3), round(max(same), 3)],
                "different_person_distance": [round(min(other), 3), round(max(other), 3)],
                "replay_similarity_copies": [round(min(copies), 3), round(max(copies), 3)],
                "replay_similarity_new_shots": [round(min(shots), 3), round(max(shots), 3)],
                "sharpness_blurred_max": round(max(blurred), 1),
                "sharpness_normal_min": round(min(r["sharpness"] for r in good), 1),
                "brightness_dark_max": round(max(dark), 1), "brightness_normal_min": round(min(r["brightness"] for r in good), 1)}
    return {"values": values, "observed_on_tuning_set": observed,
            "tuning_seeds": [TUNING_SEEDS.start, TUNING_SEEDS.stop - 1], "tuning_designs": list(TUNING_DESIGNS),
            "cases": len(rows),
            "generated_by": "python3 functions/auth/bench/kyc.py --tune",
            "how": {
                "face_match_max / face_reject_min": "same-person (holder's selfie) vs different-person distances on the "
                    "tuning set: no overlap -> the gap is cut in thirds and the middle third is the review band; overlap -> "
                    "the band covers the overlap; face_match_max is capped at dlib's published 0.6",
                "replay_min_similarity": "midpoint between the highest similarity of a new shot and the lowest of a copy "
                    "of the card portrait",
                "blur_min": "geometric midpoint between the sharpest deliberately blurred selfie and the least sharp normal one",
                "brightness_min": "midpoint between the brightest deliberately darkened selfie and the darkest normal one",
                "other values": "not tuned: defaults in kyc/config.py with their reasons",
            }}


# --- report ---------------------------------------------------------------------------------------

def pct(values: list[bool]) -> str:
    return f"{100 * sum(values) / len(values):.1f}% ({sum(values)}/{len(values)})" if values else "n/a"


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {"median": round(statistics.median(ordered), 1), "p90": round(p90, 1)}


def _by_group(sel: list[dict[str, Any]]) -> dict[str, str]:
    untampered_mrz = [r for r in sel if r["kind"] != "mrz_digit"]
    shown = [r["front_values_found"] for r in sel if r["front_values_found"] is not None]
    metrics = {
        "cases": str(len(sel)),
        "document found (fronts and backs)": pct([r["front_card_found"] for r in sel]
                                                 + [r["back_card_found"] for r in sel if r["back_card_found"] is not None]),
        "MRZ exact": pct([r["mrz_exact"] for r in sel]),
        "MRZ check digits valid (untampered)": pct([r["mrz_valid"] for r in untampered_mrz]),
        "front values found (all 5)": pct([all(v.values()) for v in shown]),
        "front values found (each)": pct([x for v in shown for x in v.values()]),
        "decisions correct": pct([r["correct"] for r in sel]),
        "genuine approved": pct([r["decision"] == "approve" for r in sel if r["kind"] == "genuine"]),
        "genuine rejected (must be 0)": pct([r["decision"] == "reject" for r in sel if r["kind"] == "genuine"]),
    }
    for kind in ("mrz_digit", "front_mismatch", "other_person", "expired", "replay", "low_quality"):
        metrics[f"{kind} decided right"] = pct([r["correct"] for r in sel if r["kind"] == kind])
    return metrics


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    designs = sorted({r["design"] for r in rows})
    summary: dict[str, Any] = {"cases": len(rows), "by_design": {}, "by_level": {}}
    for design in (*designs, "all"):
        summary["by_design"][design] = _by_group([r for r in rows if design in ("all", r["design"])])
    for level in ("easy", "medium", "hard"):
        summary["by_level"][level] = _by_group([r for r in rows if r["level"] == level])
    same = [r["face_distance"] for r in rows if r["kind"] in SAME_PERSON_KINDS and r["face_distance"] is not None]
    other = [r["face_distance"] for r in rows if r["kind"] == "other_person" and r["face_distance"] is not None]
    summary["face_distance"] = {
        name: {"n": len(v), "min": round(min(v), 3), "median": round(statistics.median(v), 3), "max": round(max(v), 3)}
        for name, v in (("same_person", same), ("different_person", other)) if v}
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        confusion[r["expected"]][r["decision"]] += 1
    summary["confusion (truth -> decided)"] = {k: dict(v) for k, v in sorted(confusion.items())}
    steps = ("front", "back", "face", "quality", "decide", "serial", "critical_path")
    summary["latency_ms"] = {name: quantiles([r["ms"][name] for r in rows]) for name in steps}
    summary["wrong"] = [{k: r[k] for k in ("design", "seed", "level", "kind", "expected", "decision", "reasons", "notes")}
                        for r in rows if not r["correct"]]
    return summary


def _table(title: str, columns: dict[str, dict[str, str]]) -> None:
    print(f"\n{title}")
    print(f"{'metric':40s}" + "".join(f"{name:>20s}" for name in columns))
    for metric in next(iter(columns.values())):
        print(f"{metric:40s}" + "".join(f"{columns[name][metric]:>20s}" for name in columns))


def print_table(summary: dict[str, Any]) -> None:
    print(f"\nKYC benchmark: {summary['cases']} generated cases (in-process, 1 thread)")
    by_design = {(f"{d} (held out)" if d in HELD_OUT else f"{d} (passport)" if d in PASSPORTS else d): v
                 for d, v in summary["by_design"].items()}
    _table(f"by card design (thresholds and reading rules tuned on {', '.join(TUNING_DESIGNS)} only):", by_design)
    _table("by degradation level (all designs):", summary["by_level"])
    print("\nface distance:", json.dumps(summary["face_distance"]))
    print("confusion (truth -> decided):", json.dumps(summary["confusion (truth -> decided)"]))
    print("\nlatency ms (median / p90):")
    for name, q in summary["latency_ms"].items():
        print(f"  {name:14s} {q['median']:8.1f} {q['p90']:8.1f}")
    for wrong in summary["wrong"]:
        print("wrong:", json.dumps(wrong))


def main() -> None:
    from kyc.synth import DESIGNS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tune", action="store_true",
                        help=f"tune thresholds on the tuning seeds of designs {', '.join(TUNING_DESIGNS)} first, "
                             f"write thresholds.json")
    parser.add_argument("--cases", type=int, default=len(REPORT_SEEDS), help="report cases per design (seeds 0..N-1)")
    parser.add_argument("--designs", default=",".join(DESIGNS), help=f"card designs to report on (default: all, "
                                                                      f"{','.join(DESIGNS)})")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "kyc.json"))
    args = parser.parse_args()
    designs = tuple(d.strip() for d in args.designs.split(",") if d.strip())
    unknown = sorted(set(designs) - set(DESIGNS))
    if unknown or not designs:
        parser.error(f"--designs {args.designs!r}: unknown design(s) {unknown}; choose from {', '.join(DESIGNS)}")
    if args.tune:
        rows = evaluate(TUNING_SEEDS, "tuning", TUNING_DESIGNS)
        tuned = tune(rows)
        path = PROJECT / "kyc" / "thresholds.json"
        path.write_text(json.dumps(tuned, indent=1) + "\n")
        print(f"wrote {path}: {json.dumps(tuned['values'])}")
        # The steps bound the old thresholds at import: measure the report set in a fresh process.
        command = [sys.executable, __file__, "--cases", str(args.cases), "--designs", args.designs, "--out", args.out]
        sys.exit(subprocess.run(command, check=False).returncode)
    rows = evaluate(range(REPORT_SEEDS.start, REPORT_SEEDS.start + args.cases), "report", designs)
    summary = report(rows)
    from kyc.config import CONFIG
    summary["thresholds"] = CONFIG.thresholds()
    print_table(summary)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "cases": rows}, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
