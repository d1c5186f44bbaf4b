"""Write sample uploads for the kyc flow: ``python functions/auth/make_samples.py OUTDIR [KIND] [SEED] [DESIGN]``.

KIND is one of genuine, mrz_digit, front_mismatch, other_person, expired, replay, low_quality
(default genuine); DESIGN one of A, B, C (ID cards) or P (a passport page, which has no back; default A).
Writes front.jpg, back.jpg (not for a passport) and selfie.jpg, and prints the expected decision.
"""

import sys
from pathlib import Path

from kyc.cases import make_case
from kyc.synth import DESIGNS


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    out = Path(sys.argv[1])
    kind = sys.argv[2] if len(sys.argv) > 2 else "genuine"
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    design = sys.argv[4] if len(sys.argv) > 4 else "A"
    if design not in DESIGNS:
        raise SystemExit(f"DESIGN {design!r} is not one of {', '.join(DESIGNS)}")
    case = make_case(seed, "easy", kind, design)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("front", "back", "selfie"):
        data = getattr(case, name)
        if data is not None:
            (out / f"{name}.jpg").write_bytes(data)
            written.append(f"{name}.jpg")
    print(f"wrote {', '.join(f'{out}/{w}' for w in written)}: expect {case.expected_decision} {list(case.expected_reasons)}")


if __name__ == "__main__":
    main()
