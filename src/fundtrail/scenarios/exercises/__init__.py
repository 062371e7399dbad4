"""Exercises for trainees: create (truth sealed), hand out, submit, score, board.

``service.py`` holds the workflow and the scoring, ``answers.py`` the accepted answer shapes,
``sealing.py`` the owner key and the sealed truth.
"""

from fundtrail.scenarios.exercises.answers import Answer, AnswerKind, Finding, parse_answer
from fundtrail.scenarios.exercises.service import (
    DIFFICULTIES,
    TYPOLOGIES,
    WHOLE,
    BoardRow,
    Exercise,
    HandOut,
    Part,
    Score,
    Submission,
    board,
    create_exercise,
    hand_out,
    list_exercises,
    list_submissions,
    load_exercise,
    open_truth,
    score_exercise,
    submit_answer,
    true_cash_outs,
    write_board_chart,
)

__all__ = [
    "DIFFICULTIES",
    "TYPOLOGIES",
    "WHOLE",
    "Answer",
    "AnswerKind",
    "BoardRow",
    "Exercise",
    "Finding",
    "HandOut",
    "Part",
    "Score",
    "Submission",
    "board",
    "create_exercise",
    "hand_out",
    "list_exercises",
    "list_submissions",
    "load_exercise",
    "open_truth",
    "parse_answer",
    "score_exercise",
    "submit_answer",
    "true_cash_outs",
    "write_board_chart",
]
