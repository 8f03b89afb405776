"""``python -m dnn``: the command line (see :mod:`dnn.cli`)."""

from dnn.cli import main

raise SystemExit(main())
