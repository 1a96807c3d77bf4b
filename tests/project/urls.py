from django.urls import path

from . import views

urlpatterns = [
    path("hello", views.hello),
    path("stream", views.stream),
    path("publish", views.publish),
    path("login", views.login_view),
    path("logout", views.logout_view),
    path("stats", views.stats),
    path("groups", views.set_groups),
    path("token", views.token),
    path("websocket-uri", views.websocket_uri),
]
