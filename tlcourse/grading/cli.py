"""The command line of the course life cycle: one registry entry per subcommand (``tlcourse`` adds them)."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence

from tlcourse.grading.check import check_notebook
from tlcourse.grading.collect import COLLECT_PATTERNS, collect
from tlcourse.grading.course import CourseError
from tlcourse.grading.export import EXPORTERS, export_grades
from tlcourse.grading.feedback import feedback_archive, generate_feedback
from tlcourse.grading.grade import DEFAULT_TIMEOUT, grade
from tlcourse.grading.lms import ARCHIVES, FILLERS
from tlcourse.grading.release import publish, release
from tlcourse.grading.report import write_report
from tlcourse.grading.sandbox import Limits

__all__ = ["COMMANDS", "register_cli", "main"]

Command = Callable[[argparse.Namespace], int]


def _command(name: str) -> Callable[[Command], Command]:
    """A subcommand whose ``CourseError`` is its message on stderr and exit code 2 (one place for all of them)."""
    def wrap(fn: Command) -> Command:
        @functools.wraps(fn)
        def run(args: argparse.Namespace) -> int:
            try:
                return fn(args)
            except CourseError as exc:
                print(f"tlcourse {name}: {exc}", file=sys.stderr)
                return 2
        return run
    return wrap


@_command("release")
def _cmd_release(args: argparse.Namespace) -> int:
    differences = release(args.root, check=args.check, assignments=args.assignments or None)
    if args.check and differences:
        print("lessons/ is out of date: run `tlcourse release` and commit the result", file=sys.stderr)
        return 1
    return 0


@_command("grade")
def _cmd_grade(args: argparse.Namespace) -> int:
    limits = Limits(memory_mb=args.memory, processes=args.max_processes, disk_mb=args.disk)
    rows = grade(args.submissions, args.assignment, out=args.out, jobs=args.jobs, timeout=args.timeout,
                 cell_timeout=args.cell_timeout, profile=args.profile, feedback=not args.no_feedback,
                 root=args.root, sandbox=not args.no_sandbox, limits=limits)
    return 0 if rows else 1


@_command("check")
def _cmd_check(args: argparse.Namespace) -> int:
    status = 0
    for notebook in args.notebooks:
        result = check_notebook(notebook, profile=args.profile, cell_timeout=args.cell_timeout, root=args.root,
                                visible_only=args.visible_only)
        print(result.report())
        status = status or (0 if result.passed else 1)
    return status


@_command("feedback")
def _cmd_feedback(args: argparse.Namespace) -> int:
    if not args.no_regenerate:
        for f in generate_feedback(args.assignment, args.students or None, root=args.root):
            print(f)
    if args.archive:
        lms, out = args.archive
        if lms not in ARCHIVES:
            raise CourseError(f"--archive {lms}: choose one of {', '.join(sorted(ARCHIVES))}")
        path, left_out = feedback_archive(lms, out, args.assignment, root=args.root)
        for line in left_out:
            print(f"not in the archive: {line}", file=sys.stderr)
        print(path)
    return 0


def _profiles() -> list[str]:
    from tlcourse.config import PROFILES

    return sorted(PROFILES)


def _add_release(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("release", help="regenerate lessons/ from solutions/ with nbgrader",
                       description="Regenerate the student notebooks in lessons/ from solutions/NN_*.")
    p.add_argument("assignments", nargs="*", help="only these assignments (default: all)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when lessons/ differ")
    p.set_defaults(func=_cmd_release)
    return p


def _add_grade(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("grade", help="autograde a folder of submissions; write a CSV and feedback",
                       description="Autograde <student>/<notebook>.ipynb (or <student>.ipynb) submissions.")
    p.add_argument("submissions", help="folder of submissions (e.g. course/submitted or an LMS download)")
    p.add_argument("--assignment", required=True, help="e.g. 00_warmup")
    p.add_argument("--out", default="grades.csv", help="the grades CSV (default: grades.csv)")
    p.add_argument("--jobs", type=int, default=1, help="submissions executed at once (default 1)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"seconds one submission may run in all (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--cell-timeout", type=int, default=None, help="seconds per cell (default: nbgrader_config.py)")
    p.add_argument("--profile", default="grading", choices=_profiles(), help="run profile (default grading)")
    p.add_argument("--no-feedback", action="store_true", help="skip the HTML feedback")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run submissions WITHOUT the bubblewrap sandbox, with your permissions (trusted code only)")
    p.add_argument("--memory", type=int, default=Limits.memory_mb, help="MB of memory per submission")
    p.add_argument("--max-processes", type=int, default=Limits.processes, help="processes per submission")
    p.add_argument("--disk", type=int, default=Limits.disk_mb, help="MB of scratch space per submission")
    p.set_defaults(func=_cmd_grade)
    return p


def _add_check(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("check", help="run a lesson with its tests and print your points",
                       description="Run notebooks in the grading profile and report each exercise: visible and "
                                   "hidden tests when the lesson's source notebook is in the course folder, "
                                   "visible tests only otherwise.")
    p.add_argument("notebooks", nargs="+", help="e.g. lessons/00_warmup/00_warmup.ipynb")
    p.add_argument("--visible-only", action="store_true",
                   help="run only the visible tests (what Validate runs), even when the source is here")
    p.add_argument("--profile", default="grading", choices=_profiles(), help="run profile (default grading)")
    p.add_argument("--cell-timeout", type=int, default=None, help="seconds per cell (default: nbgrader_config.py)")
    p.set_defaults(func=_cmd_check)
    return p


def _add_feedback(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("feedback", help="regenerate HTML feedback (e.g. after manual grading)",
                       description="Regenerate the feedback of autograded submissions, hidden tests removed.")
    p.add_argument("--assignment", required=True)
    p.add_argument("students", nargs="*", help="only these students (default: every autograded one)")
    p.add_argument("--archive", nargs=2, metavar=("LMS", "ZIP"), default=None,
                   help=f"also zip the feedback for the LMS's bulk upload ({'|'.join(sorted(ARCHIVES))}), "
                        "e.g. --archive moodle feedback.zip")
    p.add_argument("--no-regenerate", action="store_true", help="archive the feedback as it is (no regeneration)")
    p.set_defaults(func=_cmd_feedback)
    return p


@_command("publish")
def _cmd_publish(args: argparse.Namespace) -> int:
    publish(args.target, root=args.root, colab=args.colab, branch=args.branch)
    return 0


def _add_publish(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("publish", help="write the student-facing course (no solutions, no hidden tests) to DIR",
                       description="Write the lessons, the tlcourse package and the set-up files to a new folder, "
                                   "for a graded class; solutions/ and every hidden test stay here.")
    p.add_argument("target", help="a new, empty folder")
    p.add_argument("--colab", metavar="GITHUB_REPO", default=None,
                   help="the GitHub repository this copy goes to (https://github.com/OWNER/NAME): every lesson "
                        "then installs the course's package when opened in Google Colab")
    p.add_argument("--branch", default="main", help="the branch of that repository (with --colab)")
    p.set_defaults(func=_cmd_publish)
    return p


@_command("export")
def _cmd_export(args: argparse.Namespace) -> int:
    if args.gradescope_autograder:
        from tlcourse.grading.gradescope import build_autograder

        print(build_autograder(args.gradescope_autograder, args.out, root=args.root))
        return 0
    print(export_grades(args.lms, args.out, assignments=args.assignments or None, root=args.root,
                        roster=args.roster, times=args.times, zone=args.times_zone, extensions=args.extensions))
    return 0


def _add_export(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="write the gradebook as an LMS's import CSV (Canvas, Moodle, Gradescope, plain)",
                       description="Grades with the late rule applied to the final score (manual points included). "
                                   "With --roster in Canvas's gradebook export or Moodle's grading worksheet, the "
                                   "file written is that file with our grade cells filled.")
    p.add_argument("--lms", choices=sorted(set(EXPORTERS) | set(FILLERS)), default="csv",
                   help="the CSV format (default: csv)")
    p.add_argument("--out", required=True, help="the CSV file to write (the zip with --gradescope-autograder)")
    p.add_argument("--gradescope-autograder", default=None, metavar="NN",
                   help="write Gradescope's autograder zip for this assignment instead of grades (setup.sh, "
                        "run_autograder, the course's files; see tlcourse.grading.gradescope)")
    p.add_argument("--roster", default=None,
                   help="the LMS's own file: Canvas gradebook export, Moodle grading worksheet, Gradescope roster "
                        "or id,first_name,last_name,email (imported into the gradebook first)")
    p.add_argument("--times", default=None, help="submission times from the LMS: a CSV with an id column "
                                                 "(student_id, SIS Login ID, ID, Identifier, Email address) and a "
                                                 "time column (submitted_at, Last modified (submission))")
    p.add_argument("--times-zone", default=None, metavar="ZONE",
                   help="the zone of times written without one in --times (Moodle's), e.g. Europe/Paris")
    p.add_argument("--extensions", default=None,
                   help="per-student extensions (default: extensions.csv in the course root)")
    p.add_argument("assignments", nargs="*", help="only these assignments (default: every one in the gradebook)")
    p.set_defaults(func=_cmd_export)
    return p


@_command("collect")
def _cmd_collect(args: argparse.Namespace) -> int:
    report = collect(args.download, args.assignment, lms=args.lms, root=args.root, excused=args.excuse)
    print(report.table())
    problems = report.problems
    print(f"{len(report.collected)} collected into the course's submitted/ folder; "
          + (f"{len(problems)} missing or refused: {', '.join(sorted(s.student for s in problems))}"
             if problems else "no roster student missing"))
    return 0 if report.ok else 1


def _add_collect(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("collect", help="sort an LMS download (zip or folder) into submitted/<student>/",
                       description="Sort a bulk download of an LMS into submitted/<student>/<assignment>/: only the "
                                   "names the LMS made (top level) say whose upload it is; one line per student "
                                   "(collected, missing, refused, excused). Exit 1 when a roster student is "
                                   "missing or refused and not excused.")
    p.add_argument("download", help="the downloaded .zip or a folder of files")
    p.add_argument("--assignment", required=True)
    p.add_argument("--lms", choices=sorted(COLLECT_PATTERNS), default="canvas", help="how files are named")
    p.add_argument("--excuse", action="append", default=[], metavar="ID",
                   help="a student excused from this assignment (repeatable)")
    p.set_defaults(func=_cmd_collect)
    return p


@_command("report")
def _cmd_report(args: argparse.Namespace) -> int:
    print(write_report(args.assignment, out=args.out, root=args.root))
    return 0


def _add_report(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="instructor report of a graded assignment: pass rates, similar answers",
                       description="Per test cell: passed, failed, errored and the failure messages (hidden tests "
                                   "included: for instructors only); pairs of similar answer cells (copydetect for "
                                   "code, rapidfuzz for written answers), a flag for a human, never a penalty. "
                                   "Writes CSVs, PNGs and report.md.")
    p.add_argument("--assignment", required=True, help="e.g. 00_warmup (graded with `tlcourse grade` first)")
    p.add_argument("--out", default=None, help="the folder to write (default: <course>/reports/<assignment>)")
    p.set_defaults(func=_cmd_report)
    return p


@_command("push-grades")
def _cmd_push_grades(args: argparse.Namespace) -> int:
    from tlcourse.grading.ags import push_grades  # lazy: requests and pyjwt load only for this command

    report = push_grades(args.assignment, root=args.root, dry_run=args.dry_run)
    print(report.table())
    print(report.summary())
    return 0


def _add_push_grades(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("push-grades", help="send an assignment's final scores to the LMS (LTI 1.3 AGS)",
                       description="Final scores (manual points and late penalty included, as in `export`) to the "
                                   "LMS course's line item over LTI Advantage (c.Tlcourse.lti in nbgrader_config.py). "
                                   "Idempotent: a score the LMS already holds is not sent again.")
    p.add_argument("--assignment", required=True)
    p.add_argument("--dry-run", action="store_true", help="read the LMS, send nothing; say what would be sent")
    p.set_defaults(func=_cmd_push_grades)
    return p


#: The grading subcommands: name -> function adding its parser.
COMMANDS: dict[str, Callable[[argparse._SubParsersAction], argparse.ArgumentParser]] = {
    "release": _add_release,
    "publish": _add_publish,
    "collect": _add_collect,
    "grade": _add_grade,
    "check": _add_check,
    "feedback": _add_feedback,
    "export": _add_export,
    "report": _add_report,
    "push-grades": _add_push_grades,
}


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the course life-cycle subcommands (:data:`COMMANDS`) to a ``tlcourse`` parser.

    Example:
        >>> parser = argparse.ArgumentParser(); register_cli(parser.add_subparsers(dest="command"))
        >>> parser.parse_args(["grade", "subs", "--assignment", "00_warmup"]).jobs
        1
    """
    for add in COMMANDS.values():
        p = add(subparsers)
        p.add_argument("--root", default=None, help="course root (folder with nbgrader_config.py; default: found "
                                                    "from the current folder up)")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tlcourse.grading release|publish|collect|grade|check|feedback|export …`` (as ``tlcourse …``).

    Example:
        >>> main(["release", "--check"])  # doctest: +SKIP
        0
    """
    parser = argparse.ArgumentParser(prog="python -m tlcourse.grading", description="the course life cycle")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
