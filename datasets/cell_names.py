"""The one name of a recorded cell (``cell01``, ``cell02``, ... from index 0): the recordings' keys, the tables and
every figure that labels a cell use it (a light module: the leaderboard's pages import it without torch)."""


def cell_name(index: int) -> str:
    return f"cell{int(index) + 1:02d}"
