"""``custody demo --workers N``: a small fleet of worker processes on a fresh SQLite ledger, with
crashes, verification prompts, proxy mismatches and failures injected, a sweeper beside them,
and at the end the fleet's status and why each blocked profile is blocked."""
