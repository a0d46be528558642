"""Exits 1 while a non-daemon thread is still running: the process ends when the thread does."""

import sys
import threading
import time

threading.Thread(target=time.sleep, args=(1,)).start()
print("failing on purpose")
sys.exit(1)
