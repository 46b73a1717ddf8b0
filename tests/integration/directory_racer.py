"""One racing registrar process: in each round, register this racer's profile on its spelling
of the round's directory at the same instant as every other racer, then a JSON summary.

Run as a separate process by test_directories.py. The barrier is the wall clock: round ``r``
starts at ``start_at + r * interval`` in every process, and each has opened the store first,
so the registrations meet inside the store. Racer 0 takes the directory, 1 a directory inside
it, 2 its parent, 3 the directory spelled the long way: any two of them overlap.
"""

from __future__ import annotations

import json
import sys
import time

from ledger import InvalidInput, Ledger, RegisterProfile

SPELLINGS = ("/race/r{r}/dir", "/race/r{r}/dir/inner", "/race/r{r}", "/race/r{r}/./dir/")


def main(store_url: str, racer: int, rounds: int, start_at: float, interval: float) -> None:
    won: list[int] = []
    refused: list[int] = []
    unexpected: list[str] = []
    with Ledger.open(store_url) as ledger:
        ledger.profile_ids()  # the store is open before the barrier
        for r in range(rounds):
            time.sleep(max(0.0, start_at + r * interval - time.time()))
            directory = SPELLINGS[racer].format(r=r)
            try:
                ledger.handle(
                    RegisterProfile(
                        profile_id=f"r{r}_{racer}",
                        account_id="a",
                        proxy_id="x",
                        user_data_dir=directory,
                    )
                )
                won.append(r)
            except InvalidInput as e:
                if e.field != "user_data_dir":
                    unexpected.append(str(e))
                refused.append(r)
            except Exception as e:  # the test asserts there are none
                unexpected.append(f"{type(e).__name__}: {e}")
    print(json.dumps({"racer": racer, "won": won, "refused": refused, "unexpected": unexpected}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
