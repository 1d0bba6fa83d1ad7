import sys

from scribe.cli import main
from scribe.memory import limit_malloc_arenas

limit_malloc_arenas()  # before any thread allocates
sys.exit(main())
