"""Prints the behaviour counts of an Autobahn index.json and exits 1 when any case FAILED."""
import collections
import json
import sys

with open(sys.argv[1]) as f:
    index = json.load(f)
counts = collections.Counter()
failed = []
for agent, cases in index.items():
    for case, result in cases.items():
        bad = [f"{k}={result.get(k)}" for k in ("behavior", "behaviorClose")
               if result.get(k) not in ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED")]
        if bad:
            failed.append(f"{case} " + " ".join(bad))
        counts[result.get("behavior")] += 1
total = sum(counts.values())
print("autobahn: " + ", ".join(f"{n} {b}" for b, n in sorted(counts.items())) + f" ({total} cases)")
for line in failed:
    print("FAILED:", line)
print(f"{total - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
