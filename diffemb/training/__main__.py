"""`python -m diffemb.training --model M --data pairs.jsonl --output adapter/`: `diffemb train` on its own."""

from diffemb.training.cli import main

raise SystemExit(main())
