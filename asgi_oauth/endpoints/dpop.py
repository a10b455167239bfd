"""DPoP proofs at the endpoints that bind what they issue (RFC 9449 §5, §10.1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..config import Settings
from ..dpop import DPoPNonces, replay_key, verify_dpop_proof
from ..errors import InvalidDPoPProofError
from ..models import Client
from ..requests import OAuthRequest
from ..storage.base import Storage


@dataclass(frozen=True, slots=True)
class DPoPProofs:
    """Checks the proof a token or pushed authorization request carries."""

    storage: Storage
    settings: Settings
    nonces: DPoPNonces
    clock: Callable[[], float]

    async def key(
        self, request: OAuthRequest, client: Client, path: str, *, token_request: bool = True
    ) -> str | None:
        """The thumbprint of the key a request's DPoP proof shows possession of (§5).

        Each proof is good once, across instances: its ``jti`` is kept in the store
        for as long as its ``iat`` would pass (§11.1).
        """
        if request.dpop is None:
            if client.dpop_bound_access_tokens and token_request:
                # §5.2: this client's token requests always carry a proof.
                raise InvalidDPoPProofError("this client must send a DPoP proof")
            return None
        settings, now = self.settings, int(self.clock())
        proof = verify_dpop_proof(
            request.dpop,
            method="POST",
            url=settings.issuer + path,
            now=now,
            leeway=settings.clock_skew,
            nonces=self.nonces if settings.dpop_nonce_required else None,
        )
        expires_at = proof.iat + settings.clock_skew + 1
        if not await self.storage.use_once(
            f"dpop:{replay_key(proof)}", expires_at=expires_at, now=now
        ):
            raise InvalidDPoPProofError("this DPoP proof was used before")
        return proof.jkt
