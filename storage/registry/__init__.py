"""The standalone registry in SQLite: installs, install secrets, guest storage, schedules, the
seed catalogue and invoices; db.py is the one SQLite layer they share."""
