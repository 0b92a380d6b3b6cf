from tests.support.gateway_fixtures import gateway

__all__ = ["gateway"]
