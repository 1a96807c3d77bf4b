"""The chat's own tests: real websockets to a live server of this site, on a real Redis.

``ws4redis_mw.testing.WebSocketLiveServerTestCase`` serves the site with its
websockets on the test database; each test class gets a Redis prefix of its
own, emptied after each test (docs/testing.md).  Run with
``./manage.py test chat`` (Redis at ``WS4REDIS_CONNECTION``).
"""

import json

from django.contrib.auth.models import Group, User
from django.test import Client

from ws4redis_mw.testing import WebSocketLiveServerTestCase


class ChatTests(WebSocketLiveServerTestCase):
    def setUp(self):
        red, blue = Group.objects.create(name="red"), Group.objects.create(name="blue")
        self.john, self.mary, self.joe = (User.objects.create_user(name, password="demo") for name in ("john", "mary", "joe"))
        red.user_set.add(self.john, self.mary)
        blue.user_set.add(self.joe)  # a socket with no group to subscribe to is refused (403)

    def post_as(self, user, path, **data):
        client = Client()
        client.force_login(user)
        return client.post(path, data)

    def test_a_direct_message_reaches_the_recipient_and_the_sender_and_no_one_else(self):
        with self.websocket("/ws/userchat?subscribe-user", user=self.mary) as mary, \
                self.websocket("/ws/userchat?subscribe-user", user=self.john) as john, \
                self.websocket("/ws/userchat?subscribe-user", user=self.joe) as joe:
            self.assertEqual(self.post_as(self.john, "/user/", to="mary", text="hi mary").status_code, 200)
            self.assertEqual(json.loads(mary.receive()), {"sender": "john", "to": "mary", "text": "hi mary"})
            self.assertEqual(json.loads(john.receive())["text"], "hi mary")
            self.assertEqual(joe.receive_all(), [])

    def test_a_group_message_reaches_the_group_only(self):
        with self.websocket("/ws/groupchat?subscribe-group", user=self.mary) as mary, \
                self.websocket("/ws/groupchat?subscribe-group", user=self.joe) as joe:
            self.assertEqual(self.post_as(self.john, "/group/", to="red", text="red team").status_code, 200)
            self.assertEqual(json.loads(mary.receive())["text"], "red team")
            self.assertEqual(joe.receive_all(), [])

    def test_no_one_can_post_to_a_group_they_are_not_in(self):
        self.assertEqual(self.post_as(self.joe, "/group/", to="red", text="let me in").status_code, 400)

    def test_the_broadcast_room_relays_what_a_visitor_sends(self):
        with self.websocket("/ws/chat?subscribe-broadcast&publish-broadcast&echo") as sender, \
                self.websocket("/ws/chat?subscribe-broadcast") as reader:
            sender.send(json.dumps({"sender": "guest", "text": "hello room"}))
            self.assertEqual(json.loads(reader.receive())["text"], "hello room")
            self.assertEqual(json.loads(sender.receive())["text"], "hello room")  # echo: the sender's own copy

    def test_a_visitor_cannot_publish_to_the_users_channels(self):
        with self.websocket("/ws/userchat?subscribe-user&publish-user", user=self.john) as john, \
                self.websocket("/ws/userchat?subscribe-user", user=self.mary) as mary:
            john.send("forged")  # publish-user is not allowed (chat.views.allowed_channels): dropped
            self.assertEqual(mary.receive_all(), [])
