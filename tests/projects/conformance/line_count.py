import sys
from pathlib import Path

print(f"{len(Path(sys.argv[1]).read_text().splitlines())} lines")
