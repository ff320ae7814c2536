"""Names the Swift Testing tests a log shows started and never finished (passed, failed or skipped): what a
stopped `swift test` pass was waiting on. Usage: unfinished-tests.py <swift test log>."""

import re
import sys

STARTED = re.compile(r"^◇ Test (.+?) started\.$")
ENDED = re.compile(r"^[✔✘➜] Test (.+?) (?:passed|failed|skipped|recorded|with \d+ test case)")


def main():
    started, ended = [], set()
    with open(sys.argv[1], encoding="utf-8", errors="replace") as log:
        for line in log:
            line = line.rstrip("\n")
            if match := STARTED.match(line):
                started.append(match.group(1))
            elif match := ENDED.match(line):
                ended.add(match.group(1))
    unfinished = [name for name in dict.fromkeys(started) if name not in ended and not name.startswith("case ")]
    print("\n".join(unfinished) if unfinished else "(none found in the log)")


if __name__ == "__main__":
    main()
