from decimal import Decimal

from django.core.management.base import BaseCommand

from orders.models import Product

DEMO_PRODUCTS = [
    ("LAPTOP-14", "Laptop", "999.99", 25, "A light 14-inch laptop with a full day of battery."),
    ("MOUSE-01", "Mouse", "29.99", 200, "A quiet wireless mouse."),
    ("KEYB-01", "Keyboard", "89.99", 80, "A mechanical keyboard with brown switches."),
    ("MON-27", "Monitor", "299.99", 40, "A 27-inch 1440p monitor."),
    ("HEAD-01", "Headphones", "149.99", 60, "Over-ear headphones with noise cancelling."),
    ("DOCK-01", "USB-C Dock", "119.99", 30, "One cable for power, screens and network."),
    ("CAM-01", "Webcam", "69.99", 50, "A 1080p webcam with a privacy shutter."),
    ("SSD-1TB", "External SSD 1 TB", "109.99", 45, "Fast, pocket-sized storage."),
    ("MIC-01", "USB Microphone", "79.99", 20, "A cardioid microphone for calls."),
    ("STAND-01", "Laptop Stand", "39.99", 70, "Aluminium, adjustable height."),
    ("HUB-01", "USB Hub", "24.99", 120, "Four USB-A ports."),
    ("PAD-01", "Desk Pad", "19.99", 150, "A large felt desk pad."),
    ("LAMP-01", "Desk Lamp", "49.99", 3, "A dimmable LED lamp. Almost sold out."),
    ("CHAIR-01", "Office Chair", "349.99", 10, "Ergonomic, with lumbar support."),
]


class Command(BaseCommand):
    help = "Create the demo catalog (idempotent: existing products keep their stock)."

    def handle(self, *args, **options):
        created = 0
        for sku, name, price, stock, description in DEMO_PRODUCTS:
            _, was_created = Product.objects.get_or_create(
                sku=sku,
                defaults={
                    "name": name,
                    "price": Decimal(price),
                    "stock": stock,
                    "description": description,
                },
            )
            created += was_created
        self.stdout.write(
            f"catalog: {created} product(s) created, {len(DEMO_PRODUCTS) - created} existed"
        )
