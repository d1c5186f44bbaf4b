"""Write sample uploads for the kyc flow: ``python functions/auth/make_samples.py OUTDIR [KIND] [SEED]``.

KIND is one of genuine, mrz_digit, front_mismatch, other_person, expired, replay, low_quality
(default genuine). Writes front.jpg, back.jpg and selfie.jpg, and prints the expected decision.
"""

import sys
from pathlib import Path

from kyc.cases import make_case


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    out = Path(sys.argv[1])
    kind = sys.argv[2] if len(sys.argv) > 2 else "genuine"
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    case = make_case(seed, "easy", kind)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("front", "back", "selfie"):
        (out / f"{name}.jpg").write_bytes(getattr(case, name))
    print(f"wrote {out}/front.jpg, back.jpg, selfie.jpg: expect {case.expected_decision} {list(case.expected_reasons)}")


if __name__ == "__main__":
    main()
