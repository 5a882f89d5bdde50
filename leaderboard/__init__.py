"""Leaderboard: submissions, scoring workers, results database, web app and the main job ``zoo run``."""
