#!/usr/bin/env python3
"""Counts test results from JUnit/xUnit XML reports, for tools/test.

    junit-summary.py REPORT.xml...

Reads the reports `swift test --xunit-output` writes (Swift Testing's is the `-swift-testing.xml` next to the
XCTest one; SwiftPM 6.3 writes the XCTest file only when there are XCTest tests) and pytest's `--junitxml`.
Every <testcase> counts once: failed when it holds a <failure> or <error>, skipped when it holds <skipped>, else
passed. (The suite's own `tests=` attribute is not used: Swift Testing leaves skipped tests out of it.)

Prints "PASSED FAILED SKIPPED" on the first line, then one line per failed test: its name (class name and test
name) and the first line of its first failure message. Exits 2, printing nothing on stdout, when a report is
missing or is not XML, so that a runner that crashed before writing its report cannot read as "0 failed".
"""
import sys
import xml.etree.ElementTree as ElementTree


def first_line(text, limit=200):
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def main(paths):
    passed = failed = skipped = 0
    failures = []
    for path in paths:
        try:
            root = ElementTree.parse(path).getroot()
        except (OSError, ElementTree.ParseError) as error:
            print(f"junit-summary: cannot read {path}: {error}", file=sys.stderr)
            return 2
        for case in root.iter("testcase"):
            problems = [child for child in case if child.tag in ("failure", "error")]
            if problems:
                failed += 1
                name = ".".join(part for part in (case.get("classname"), case.get("name")) if part) or "(unnamed)"
                message = first_line(problems[0].get("message") or problems[0].text)
                failures.append(f"{name}: {message}" if message else name)
            elif case.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
    print(passed, failed, skipped)
    for line in failures:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
