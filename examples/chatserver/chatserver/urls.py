from django.contrib.auth import views as auth_views
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import path

from chat import views

urlpatterns = [
    path("", views.broadcast_chat, name="broadcast-chat"),
    path("user/", views.user_chat, name="user-chat"),
    path("group/", views.group_chat, name="group-chat"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
# runserver serves static files by itself; this serves them under the other
# servers too, while DEBUG is on (in production: collectstatic and a web server).
urlpatterns += staticfiles_urlpatterns()
