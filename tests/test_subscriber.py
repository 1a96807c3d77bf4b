"""WS4REDIS_SUBSCRIBER: the default class, a ws4redis-style subclass, and classes refused at startup."""

from types import SimpleNamespace

import pytest

from ws4redis_mw.settings import Settings, SettingsError
from ws4redis_mw.subscriber import RedisSubscriber, subscriber_class

SETTINGS = Settings(prefix="site")


class Ws4redisStyle(RedisSubscriber):
    """Written for ws4redis: fewer flags, and set_pubsub_channels(request, channels) subscribing itself."""

    subscription_channels = ["subscribe-broadcast"]
    publish_channels = []

    def set_pubsub_channels(self, request, channels):
        self._subscription.subscribe("custom:" + request.path_info.rsplit("/", 1)[-1])


def anonymous(path="/ws/chat"):
    return SimpleNamespace(path_info=path, user=None, session=None)


def test_default_subscriber_names_channels_with_the_settings_prefix():
    subscriber = subscriber_class("ws4redis_mw.subscriber.RedisSubscriber")(settings=SETTINGS)
    subscriber.set_pubsub_channels(anonymous(), ["subscribe-broadcast", "publish-broadcast"])
    assert subscriber.subscriptions == ["site:broadcast:chat"] and subscriber.publishers == ["site:broadcast:chat"]


def test_ws4redis_style_subclass_subscribes_through_its_pubsub_calls():
    subscriber = subscriber_class(Ws4redisStyle)(settings=SETTINGS)
    subscriber.set_pubsub_channels(anonymous(), ["subscribe-broadcast"])
    assert subscriber.subscriptions == ["custom:chat"] and subscriber.publishers == []


def test_subclass_flag_lists_limit_what_a_client_may_ask_for():
    assert Ws4redisStyle.allowed_flags() == {"subscribe-broadcast"}
    assert "publish-user" in RedisSubscriber.allowed_flags()


def test_a_class_that_is_no_subscriber_is_refused():
    with pytest.raises(SettingsError, match="subclass"):
        subscriber_class("builtins.dict")


def test_a_subclass_that_cannot_take_settings_is_refused():
    class Old(RedisSubscriber):
        def __init__(self, connection):
            super().__init__(connection)

    with pytest.raises(SettingsError, match="arguments"):
        subscriber_class(Old)


@pytest.mark.parametrize("method", ["send_persisted_messages", "parse_response", "get_file_descriptor", "release",
                                    "publish_message", "pipeline_publish_message"])
def test_a_subclass_overriding_a_ws4redis_method_the_hub_replaces_is_refused_naming_it(method):
    cls = type("Custom", (RedisSubscriber,), {method: lambda self, *args: None})
    with pytest.raises(SettingsError, match=f"overrides {method}\\(\\)"):
        subscriber_class(cls)
