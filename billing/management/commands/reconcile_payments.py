from django.core.management.base import BaseCommand

from billing.reconcile import reconcile_payments


class Command(BaseCommand):
    help = (
        "Compare payments and refunds with Stripe and report every mismatch; "
        "--repair fixes the safe ones (see billing/reconcile.py)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--repair", action="store_true", help="repair what can be repaired")

    def handle(self, *args, repair: bool = False, **options):
        mismatches = reconcile_payments(repair=repair)
        for m in mismatches:
            self.stdout.write(str(m))
        left = [m for m in mismatches if not m.repaired]
        self.stdout.write(
            f"{len(mismatches)} mismatch(es), {len(mismatches) - len(left)} repaired, "
            f"{len(left)} left."
        )
        if left:
            raise SystemExit(1)
