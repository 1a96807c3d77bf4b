"""``manage.py create_demo_users``: john, mary and joe (password "demo"), in groups red and blue."""

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand

USERS = {"john": ["red"], "mary": ["red", "blue"], "joe": ["blue"]}
PASSWORD = "demo"


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        for name, groups in USERS.items():
            user, created = User.objects.get_or_create(username=name)
            if created:
                user.set_password(PASSWORD)
                user.save()
            user.groups.set([Group.objects.get_or_create(name=group)[0] for group in groups])
            self.stdout.write(f"{name}: {'created' if created else 'exists'}, groups {', '.join(groups)}")
