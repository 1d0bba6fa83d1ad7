import sys

from scribe.cli import main
from scribe.memory import tune_memory

tune_memory()  # before any thread allocates
sys.exit(main())
