#!/usr/bin/python3
"""Run the sse-fcgi integration suite.

    SSE_FCGI_BIN=/abs/path/sse-fcgi SANITIZE=0|1 /usr/bin/python3 tests/integration/run.py [NAME...]

NAME arguments keep only the tests whose name contains one of them.
One line per test, then `N passed, N failed[, N skipped]`; exit 1 on failure.
"""

import glob
import importlib
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True

import harness  # noqa: E402

PER_TEST_LIMIT = 90 * harness.SLOW  # seconds; a hung test fails, the suite goes on


class _Alarm(BaseException):
    pass


def _on_alarm(signum, frame):
    raise _Alarm()


def main(argv):
    filters = [a for a in argv if not a.startswith("-")]
    keep = "--keep" in argv
    if not os.access(harness.BIN, os.X_OK):
        print("SSE_FCGI_BIN=%s is not an executable (run `make integration`)" % harness.BIN)
        return 2
    if os.geteuid() != 0:
        print("the integration tests start nginx and spawn-fcgi as root (user www-data): run as root")
        return 2
    harness.become_subreaper()
    harness.raise_nofile()
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, "test_*.py"))):
        importlib.import_module(os.path.basename(path)[:-3])
    tests = [t for t in harness.TESTS if not filters or any(f in t[0] for f in filters)]
    root = tempfile.mkdtemp(prefix="sse-it-")
    os.chmod(root, 0o755)
    signal.signal(signal.SIGALRM, _on_alarm)
    print("sse-fcgi integration: %s%s, %d tests, dir %s" % (
        harness.BIN, " (sanitized)" if harness.SANITIZE else "", len(tests), root), flush=True)
    passed = failed = skipped = 0
    t_suite = time.monotonic()
    for name, fn, loop in tests:
        env = None
        problems = []
        status = "PASS"
        t0 = time.monotonic()
        limit = harness.TEST_LIMITS[name] * harness.SLOW if name in harness.TEST_LIMITS else PER_TEST_LIMIT
        signal.alarm(int(limit))
        try:
            env = harness.Env(name, root, loop)
            fn(env)
        except harness.TestSkip as e:
            status = "SKIP"
            problems.append(str(e))
        except harness.TestFailure as e:
            status = "FAIL"
            problems.append(str(e))
        except _Alarm:
            status = "FAIL"
            problems.append("test exceeded %.0fs" % limit)
        except Exception:
            status = "FAIL"
            problems.append("test error:\n" + traceback.format_exc())
        finally:
            signal.alarm(0)
        if env is not None:
            try:
                signal.alarm(60)
                more = env.teardown()
            except BaseException:
                more = ["teardown error:\n" + traceback.format_exc()]
            finally:
                signal.alarm(0)
            if more:
                if status != "FAIL":
                    status = "FAIL"
                problems.extend(more)
        dt = time.monotonic() - t0
        print("%s %s %.2fs" % (status, name, dt), flush=True)
        notes = env.notes if env is not None else []
        for n in notes:
            print("    " + n)
        if status != "PASS":
            for p in problems:
                print("    " + p.replace("\n", "\n    "))
        sys.stdout.flush()
        if status == "PASS":
            passed += 1
        elif status == "SKIP":
            skipped += 1
        else:
            failed += 1
    total = time.monotonic() - t_suite
    print("suite time %.1fs" % total)
    if not keep and not failed:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print("test directories kept in %s" % root)
    summary = "%d passed, %d failed" % (passed, failed)
    if skipped:
        summary += ", %d skipped" % skipped
    print(summary, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
