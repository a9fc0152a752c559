"""Scanning the universe with formulas: the language (:mod:`.formula`) and the batch
processor (:mod:`.engine`). See docs/scan-formulas.md and docs/scan.md."""

from breadthflow.scan.engine import ProcessingEngine, ProcessingJob, ProcessingResult
from breadthflow.scan.formula import Formula, FormulaError, check_formula, compile_formula

__all__ = [
    "Formula",
    "FormulaError",
    "ProcessingEngine",
    "ProcessingJob",
    "ProcessingResult",
    "check_formula",
    "compile_formula",
]
