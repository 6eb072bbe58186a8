"""The claim a running job holds, shared by the worker loop and the heartbeat thread.

Renewals (heartbeat) and the final write (loop) go through one lock, so that they never race
on the etag; a renewal that finds the claim taken over sets ``lost``, which stops the binary.
"""

from __future__ import annotations

import threading

from worker.errors import ClaimLost
from worker.state.claims import Claim, Claims


class Lease:
    """A held claim: renew it while the job runs, finish it once, know when it was lost."""

    def __init__(self, claims: Claims, claim: Claim) -> None:
        self._claims = claims
        self._claim = claim
        self._lock = threading.Lock()
        self._finished = False
        self.lost = threading.Event()

    @property
    def claim(self) -> Claim:
        """The claim as last written."""
        with self._lock:
            return self._claim

    def renew(self, now: float, lease_s: float) -> bool:
        """Extend the lease; return False (and set ``lost``) if it was taken over."""
        with self._lock:
            if self._finished or self.lost.is_set():
                return not self.lost.is_set()
            try:
                self._claim = self._claims.renew(self._claim, now, lease_s)
            except ClaimLost:
                self.lost.set()
                return False
            return True

    def finish(self, response: str) -> Claim:
        """Record the response (the fence); raise ``ClaimLost`` if the claim is not ours."""
        with self._lock:
            self._finished = True
            if self.lost.is_set():
                raise ClaimLost(f"claim {self._claim.key} was taken over; result withheld")
            self._claim = self._claims.finish(self._claim, response)
            return self._claim
