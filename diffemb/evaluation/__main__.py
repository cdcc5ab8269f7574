"""`python -m diffemb.evaluation --model M --tasks local-passkey`: `diffemb eval` on its own."""

from diffemb.evaluation.cli import main

raise SystemExit(main())
