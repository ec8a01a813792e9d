"""``samleng demo``: a ready instance on SQLite with an open petition, served locally.

Only the demo generates the organisers' details key pair on the server (into the instance
folder, so the demo's details can be decrypted); a real petition is given the public key only.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import click

from samleng.crypto.details import generate_details_keypair
from samleng.service.admin.cli import DEMO_ADMIN, ensure_demo_admin
from samleng.service.app import create_app
from samleng.service.petitions.lifecycle import create_petition, open_petition
from samleng.service.platform.config import (
    DEMO_ORIGIN,
    INSTANCE_CONFIG_FILE,
    instance_folder,
    load_config,
    write_instance_config,
)
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.errors import PetitionNotFound
from samleng.service.platform.keys import ensure_master_key, write_secret_file
from samleng.service.platform.models import PetitionStatus, get_petition

DEMO_SLUG = "demo"
DETAILS_PRIVATE = "demo-details.key"
DETAILS_PUBLIC = "demo-details.pub"

DEMO_TEXTS = {
    "km": {
        "title": "បញ្ចប់និទណ្ឌភាព៖ ដោះលែងសកម្មជនដែលកំពុងជាប់ឃុំ",
        "target": "ជូនចំពោះ ក្រសួងយុត្តិធម៌ នៃព្រះរាជាណាចក្រកម្ពុជា",
        "summary": (
            "សកម្មជនដែលបានក្រោកឈរការពារសហគមន៍របស់ខ្លួន កំពុងជាប់ពន្ធនាគារ "
            "ដោយគ្មានការជំនុំជម្រះដោយយុត្តិធម៌។ យើងស្នើសុំឲ្យដោះលែងពួកគេ "
            "និងបើកការស៊ើបអង្កេតឯករាជ្យលើការវាយប្រហារមកលើពួកគេ។"
        ),
        "body": (
            "នេះជាញត្តិសាកល្បងសម្រាប់បង្ហាញពីរបៀបដែល «សំឡេង» ដំណើរការ។ "
            "យើងមិនបញ្ជូនហត្ថលេខានៅទីនេះទៅអ្នកណាឡើយ។\n\n"
            "អ្នកការពារដីធ្លី អ្នកតំណាងសហជីព និងអ្នកសារព័ត៌មាន ត្រូវបានចាប់ខ្លួន "
            "ព្រោះតែពួកគេបាននិយាយការពិត។ ក្រុមគ្រួសាររបស់ពួកគេរង់ចាំយុត្តិធម៌ "
            "អស់ជាច្រើនឆ្នាំមកហើយ។ អ្នកដែលបានវាយប្រហារ គំរាមកំហែង "
            "ឬធ្វើឲ្យពួកគេបាត់ខ្លួន មិនដែលត្រូវបាននាំមុខទៅតុលាការទេ។\n\n"
            "យើងស្នើសុំ៖ ដោះលែងសកម្មជនទាំងអស់ដែលជាប់ឃុំដោយសារសកម្មភាពដោយសន្តិវិធី "
            "បើកការស៊ើបអង្កេតឯករាជ្យ និងធានាថាគ្មាននរណាម្នាក់ត្រូវបានដាក់ទោស "
            "ព្រោះតែបានចុះហត្ថលេខាលើញត្តិនេះ។"
        ),
    },
    "en": {
        "title": "End impunity: free the jailed activists",
        "target": "To the Ministry of Justice of the Kingdom of Cambodia",
        "summary": (
            "People who stood up for their communities are in prison without a fair trial. "
            "We ask for their release and for an independent inquiry into the attacks on them."
        ),
        "body": (
            "This is a demonstration petition that shows how Samleng works. Signatures here "
            "are not delivered to anyone.\n\n"
            "Land defenders, union representatives and journalists have been arrested for "
            "telling the truth. Their families have waited years for justice. Those who beat, "
            "threatened or disappeared them have never been brought before a court.\n\n"
            "We ask for three things: release everyone held for peaceful activism; an "
            "independent inquiry; and a guarantee that nobody is punished for signing this "
            "petition."
        ),
    },
}


def ensure_details_keypair(instance: Path) -> bytes:
    """The demo's organiser key pair, generated once into the instance. Returns the public key."""
    public_path = instance / DETAILS_PUBLIC
    if public_path.exists():
        return base64.b64decode(public_path.read_text(encoding="ascii").strip())
    private, public = generate_details_keypair()
    write_secret_file(instance / DETAILS_PRIVATE, base64.b64encode(private) + b"\n")
    write_secret_file(public_path, base64.b64encode(public) + b"\n")
    return public


def prepare_demo(instance: Path) -> Any:
    """Create (or reuse) the demo instance and return its app, ready to serve."""
    instance.mkdir(parents=True, exist_ok=True, mode=0o700)
    ensure_master_key(instance)
    if not (instance / INSTANCE_CONFIG_FILE).exists():
        # Recorded, so that `samleng seal`, `export` or `petition close` work on this
        # instance with only SAMLENG_INSTANCE set.
        write_instance_config(instance, {"DEMO": True, "ORIGIN": DEMO_ORIGIN})
    os.environ["SAMLENG_INSTANCE"] = str(instance)
    app = create_app(load_config(demo=True))
    demo = services(app)
    with app.app_context():
        upgrade(demo.engine)
        public_key = ensure_details_keypair(instance)
        session = get_session()
        cfg = demo.config
        try:
            petition = get_petition(session, DEMO_SLUG)
        except PetitionNotFound:
            petition = create_petition(
                session,
                vault=demo.vault,
                origin=cfg.origin,
                slug=DEMO_SLUG,
                texts=DEMO_TEXTS,
                goal=5000,
                identifier_mode="phone",
                details_public_key=public_key,
                argon2=cfg.argon2,
            )
        if petition.status == PetitionStatus.DRAFT:
            open_petition(session, petition, demo.vault, can_mail=demo.mailer is not None)
        session.commit()
        admin_password = ensure_demo_admin(session)
        if admin_password is not None:
            # Shown this once; only its Argon2id hash is kept.
            click.echo(
                f"admin: log in at /admin/ as {DEMO_ADMIN} with the password {admin_password} "
                "(shown only this once)"
            )
    # No connection may cross the fork into the server's worker.
    demo.engine.dispose()
    return app


def serve(app: Any, host: str, port: int) -> None:
    """Serve ``app`` with gunicorn; no access log (it would record addresses and times)."""
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", 1)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", 4)
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", "warning")

        def load(self) -> Any:
            return app

    _Server().run()


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Default: $SAMLENG_PORT or 8000.")
@click.option("--no-serve", is_flag=True, help="Prepare the instance and exit.")
def demo_command(host: str, port: int | None, no_serve: bool) -> None:
    """Create or reuse a demo instance with the open petition 'demo' and serve it."""
    instance = instance_folder()
    app = prepare_demo(instance)
    port = port or int(os.environ.get("SAMLENG_PORT", "8000"))
    click.echo(f"instance: {instance}")
    click.echo(f"Samleng demo: http://{host}:{port}/km/p/{DEMO_SLUG}  (Ctrl-C stops it)")
    if not no_serve:
        serve(app, host, port)
