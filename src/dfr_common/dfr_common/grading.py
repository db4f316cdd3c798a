"""Call grades (the Met's grading), most urgent first."""

GRADES = ("I", "S", "E", "R")     # immediate, significant, extended, referred


def urgency(grade: str) -> int:
    """0 for the most urgent grade; unknown grades sort last."""
    return GRADES.index(grade) if grade in GRADES else len(GRADES)
