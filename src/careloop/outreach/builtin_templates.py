"""The templates careloop ships, in English and Spanish: what the built-in journeys send.

Installed once per (key, channel, language) by `templates_install_builtin`; after
that they are the practice's to edit (every edit is a new version). Each one passes
the linter (tests/outreach/test_templates.py). Outside the portal none names a
diagnosis, a medication, a result or a screening: care reminders say "preventive
care" and point to the portal, where the sensitive version names it.

Texts do not greet by name: it keeps them short, keeps them in GSM-7 when a name has
an accent (one such letter makes a whole text UCS-2, less than half as many characters
per segment), and a family's shared phone does not learn who is a patient.

SMS replies: Y or C confirms, N cancels (careloop.outreach.inbound); the Spanish texts
ask for C ("confirmar"). Calls: press 1 to confirm, 2 to cancel.
"""

from __future__ import annotations

from dataclasses import dataclass

from careloop.consent.models import Channel, ContentClass, Purpose


@dataclass(frozen=True)
class BuiltinTemplate:
    key: str
    channel: str
    language: str
    purpose: str
    content_class: str
    subject: str
    body: str
    body_html: str = ""
    expects_reply: bool = False


# A text: a body alone (SMS, voice), or (subject, body) for e-mail, push and portal.
Text = str | tuple[str, str]
SMS, EMAIL, VOICE, PUSH, PORTAL = (
    Channel.SMS,
    Channel.EMAIL,
    Channel.VOICE,
    Channel.PUSH,
    Channel.PORTAL,
)
G, L, S = ContentClass.GENERIC, ContentClass.LOGISTICS, ContentClass.SENSITIVE
APPOINTMENT, CARE, MARKETING, SURVEY = (
    Purpose.APPOINTMENT,
    Purpose.CARE_REMINDER,
    Purpose.MARKETING,
    Purpose.SURVEY,
)

BUILTIN_TEMPLATES: list[BuiltinTemplate] = []


def _add(
    key: str,
    channel: Channel,
    purpose: Purpose,
    content_class: ContentClass,
    *,
    en: Text,
    es: Text,
    expects_reply: bool = False,
) -> None:
    for language, text in (("en", en), ("es", es)):
        subject, body = text if isinstance(text, tuple) else ("", text)
        BUILTIN_TEMPLATES.append(
            BuiltinTemplate(
                key=key,
                channel=str(channel),
                language=language,
                purpose=str(purpose),
                content_class=str(content_class),
                subject=subject,
                body=body,
                expects_reply=expects_reply,
            )
        )


# --- new-lead welcome -------------------------------------------------------------------

_add(
    "lead-welcome",
    EMAIL,
    MARKETING,
    G,
    en=(
        "Welcome to {{ practice.name }}",
        "Hello {{ patient.first_name }},\n\n"
        "Thank you for your interest in {{ practice.name }}. We would be glad to welcome "
        "you as a patient. To book a first visit or ask us a question, call "
        "{{ practice.phone }} or visit {{ link.portal }}.\n\n"
        "We look forward to meeting you.\n{{ practice.name }}\n\n"
        "To stop receiving these e-mails: {{ link.unsubscribe }}",
    ),
    es=(
        "Le damos la bienvenida a {{ practice.name }}",
        "Hola, {{ patient.first_name }}:\n\n"
        "Gracias por su interés en {{ practice.name }}. Será un placer atenderle como "
        "paciente. Para programar su primera consulta o hacernos una pregunta, llame al "
        "{{ practice.phone }} o visite {{ link.portal }}.\n\n"
        "Esperamos conocerle pronto.\n{{ practice.name }}\n\n"
        "Para dejar de recibir estos correos: {{ link.unsubscribe }}",
    ),
)
_add(
    "lead-welcome",
    SMS,
    MARKETING,
    G,
    en="{{ practice.name }}: Thanks for your interest! To book your first visit, call "
    "{{ practice.phone }} or visit {{ link.portal }}. Reply STOP to opt out.",
    es="{{ practice.name }}: Gracias por su interés. Para programar su primera consulta, "
    "llame al {{ practice.phone }} o visite {{ link.portal }}. Responda STOP para darse de "
    "baja.",
)

# --- onboarding: intake form, consents, insurance card ------------------------------------

_add(
    "onboarding-intake",
    SMS,
    APPOINTMENT,
    G,
    en="{{ practice.name }}: Welcome! Please fill in your intake form before your first "
    "visit: {{ link.form }}",
    es="{{ practice.name }}: ¡Le damos la bienvenida! Por favor, complete su formulario de "
    "ingreso antes de su primera consulta: {{ link.form }}",
)
_add(
    "onboarding-intake",
    EMAIL,
    APPOINTMENT,
    G,
    en=(
        "Your intake form for {{ practice.name }}",
        "Hello {{ patient.first_name }},\n\n"
        "Welcome to {{ practice.name }}. Before your first visit, please fill in your intake "
        "form online. It saves time when you check in:\n{{ link.form }}\n\n"
        "Questions? Call us at {{ practice.phone }}.\n\nThank you,\n{{ practice.name }}",
    ),
    es=(
        "Su formulario de ingreso para {{ practice.name }}",
        "Hola, {{ patient.first_name }}:\n\n"
        "Le damos la bienvenida a {{ practice.name }}. Antes de su primera consulta, por "
        "favor complete su formulario de ingreso en línea. Así ahorrará tiempo al llegar:\n"
        "{{ link.form }}\n\n"
        "¿Tiene preguntas? Llámenos al {{ practice.phone }}.\n\n"
        "Atentamente,\n{{ practice.name }}",
    ),
)
_add(
    "onboarding-intake",
    PORTAL,
    APPOINTMENT,
    G,
    en=(
        "Please fill in your intake form",
        "Welcome to {{ practice.name }}! Before your first visit, please fill in your intake "
        "form: {{ link.form }}",
    ),
    es=(
        "Complete su formulario de ingreso",
        "¡Le damos la bienvenida a {{ practice.name }}! Antes de su primera consulta, por "
        "favor complete su formulario de ingreso: {{ link.form }}",
    ),
)
_add(
    "onboarding-consents",
    SMS,
    APPOINTMENT,
    G,
    en="{{ practice.name }}: Please review and sign your consent forms before your first "
    "visit: {{ link.form }}",
    es="{{ practice.name }}: Por favor, revise y firme sus formularios de consentimiento "
    "antes de su primera consulta: {{ link.form }}",
)
_add(
    "onboarding-consents",
    EMAIL,
    APPOINTMENT,
    G,
    en=(
        "Please sign your consent forms",
        "Hello {{ patient.first_name }},\n\n"
        "Before your first visit to {{ practice.name }}, please review and sign your consent "
        "forms online:\n{{ link.form }}\n\n"
        "If you have questions about them, call us at {{ practice.phone }}.\n\n"
        "Thank you,\n{{ practice.name }}",
    ),
    es=(
        "Firme sus formularios de consentimiento",
        "Hola, {{ patient.first_name }}:\n\n"
        "Antes de su primera consulta en {{ practice.name }}, por favor revise y firme sus "
        "formularios de consentimiento en línea:\n{{ link.form }}\n\n"
        "Si tiene alguna pregunta sobre ellos, llámenos al {{ practice.phone }}.\n\n"
        "Atentamente,\n{{ practice.name }}",
    ),
)
_add(
    "onboarding-consents",
    PORTAL,
    APPOINTMENT,
    G,
    en=(
        "Please sign your consent forms",
        "Before your first visit, please review and sign your consent forms: {{ link.form }}",
    ),
    es=(
        "Firme sus formularios de consentimiento",
        "Antes de su primera consulta, por favor revise y firme sus formularios de "
        "consentimiento: {{ link.form }}",
    ),
)
_add(
    "onboarding-insurance-card",
    SMS,
    APPOINTMENT,
    G,
    en="{{ practice.name }}: Please upload a photo of the front and back of your insurance "
    "card before your visit: {{ link.form }}",
    es="{{ practice.name }}: Por favor, suba una foto del frente y del reverso de su tarjeta "
    "de seguro médico antes de su consulta: {{ link.form }}",
)
_add(
    "onboarding-insurance-card",
    EMAIL,
    APPOINTMENT,
    G,
    en=(
        "Please upload your insurance card",
        "Hello {{ patient.first_name }},\n\n"
        "To get your first visit ready, please upload a photo of the front and back of your "
        "insurance card:\n{{ link.form }}\n\n"
        "If you do not have insurance, call us at {{ practice.phone }} to talk about your "
        "options.\n\nThank you,\n{{ practice.name }}",
    ),
    es=(
        "Suba su tarjeta de seguro médico",
        "Hola, {{ patient.first_name }}:\n\n"
        "Para preparar su primera consulta, por favor suba una foto del frente y del reverso "
        "de su tarjeta de seguro médico:\n{{ link.form }}\n\n"
        "Si no tiene seguro médico, llámenos al {{ practice.phone }} para hablar de sus "
        "opciones.\n\nAtentamente,\n{{ practice.name }}",
    ),
)
_add(
    "onboarding-insurance-card",
    PORTAL,
    APPOINTMENT,
    G,
    en=(
        "Please upload your insurance card",
        "Please upload a photo of the front and back of your insurance card before your first "
        "visit: {{ link.form }}",
    ),
    es=(
        "Suba su tarjeta de seguro médico",
        "Por favor, suba una foto del frente y del reverso de su tarjeta de seguro médico "
        "antes de su primera consulta: {{ link.form }}",
    ),
)

# --- pre-visit: 7 days and 2 days before (confirm), same day, pre-registration -----------

_add(
    "previsit-7d",
    SMS,
    APPOINTMENT,
    L,
    expects_reply=True,
    en="{{ practice.name }}: Reminder of your appointment on {{ appointment.date }} at "
    "{{ appointment.time }} at {{ appointment.location }}. Reply Y to confirm or N to cancel.",
    es="{{ practice.name }}: Le recordamos su cita del {{ appointment.date }} a las "
    "{{ appointment.time }} en {{ appointment.location }}. Responda C para confirmar o N "
    "para cancelar.",
)
_add(
    "previsit-7d",
    EMAIL,
    APPOINTMENT,
    L,
    expects_reply=True,
    en=(
        "Reminder: your appointment on {{ appointment.date }}",
        "Hello {{ patient.first_name }},\n\n"
        "This is a reminder of your appointment at {{ practice.name }}:\n\n"
        "{{ appointment.date }} at {{ appointment.time }}\n"
        "With {{ appointment.provider }}\n"
        "{{ appointment.location }}\n{{ appointment.address }}\n\n"
        "Please confirm that you will come: {{ link.confirm }}\n\n"
        "If you need to cancel or change the time, call us at {{ practice.phone }}.\n\n"
        "Thank you,\n{{ practice.name }}",
    ),
    es=(
        "Recordatorio: su cita del {{ appointment.date }}",
        "Hola, {{ patient.first_name }}:\n\n"
        "Le recordamos su cita en {{ practice.name }}:\n\n"
        "{{ appointment.date }} a las {{ appointment.time }}\n"
        "Con {{ appointment.provider }}\n"
        "{{ appointment.location }}\n{{ appointment.address }}\n\n"
        "Por favor, confirme su asistencia: {{ link.confirm }}\n\n"
        "Si necesita cancelar o cambiar la hora, llámenos al {{ practice.phone }}.\n\n"
        "Atentamente,\n{{ practice.name }}",
    ),
)
_add(
    "previsit-7d",
    VOICE,
    APPOINTMENT,
    L,
    expects_reply=True,
    en="Hello, this is {{ practice.name }} calling with a reminder for "
    "{{ patient.first_name }}. You have an appointment on {{ appointment.date }} at "
    "{{ appointment.time }}, at {{ appointment.location }}. Press 1 to confirm, press 2 to "
    "cancel.",
    es="Hola, le llamamos de {{ practice.name }} con un recordatorio para "
    "{{ patient.first_name }}. Tiene una cita el {{ appointment.date }} a las "
    "{{ appointment.time }}, en {{ appointment.location }}. Oprima 1 para confirmar, oprima 2 "
    "para cancelar.",
)
_add(
    "previsit-2d",
    SMS,
    APPOINTMENT,
    L,
    expects_reply=True,
    en="{{ practice.name }}: Your appointment with {{ appointment.provider }} is in 2 days, "
    "on {{ appointment.date }} at {{ appointment.time }}. Reply Y to confirm or N to cancel.",
    es="{{ practice.name }}: Su cita con {{ appointment.provider }} es pasado mañana, el "
    "{{ appointment.date }} a las {{ appointment.time }}. Responda C para confirmar o N para "
    "cancelar.",
)
_add(
    "previsit-2d",
    EMAIL,
    APPOINTMENT,
    L,
    expects_reply=True,
    en=(
        "Your appointment is in 2 days",
        "Hello {{ patient.first_name }},\n\n"
        "Your appointment at {{ practice.name }} is in 2 days:\n\n"
        "{{ appointment.date }} at {{ appointment.time }}\n"
        "With {{ appointment.provider }}\n"
        "{{ appointment.location }}\n{{ appointment.address }}\n\n"
        "Please confirm that you will come: {{ link.confirm }}\n\n"
        "If you cannot make it, call us at {{ practice.phone }} so that we can offer the time "
        "to another patient.\n\nThank you,\n{{ practice.name }}",
    ),
    es=(
        "Su cita es pasado mañana",
        "Hola, {{ patient.first_name }}:\n\n"
        "Su cita en {{ practice.name }} es pasado mañana:\n\n"
        "{{ appointment.date }} a las {{ appointment.time }}\n"
        "Con {{ appointment.provider }}\n"
        "{{ appointment.location }}\n{{ appointment.address }}\n\n"
        "Por favor, confirme su asistencia: {{ link.confirm }}\n\n"
        "Si no puede venir, llámenos al {{ practice.phone }} para que podamos ofrecer el "
        "horario a otro paciente.\n\nAtentamente,\n{{ practice.name }}",
    ),
)
_add(
    "previsit-2d",
    VOICE,
    APPOINTMENT,
    L,
    expects_reply=True,
    en="Hello, this is {{ practice.name }} calling for {{ patient.first_name }}. Your "
    "appointment with {{ appointment.provider }} is in 2 days, on {{ appointment.date }} at "
    "{{ appointment.time }}, at {{ appointment.location }}. Press 1 to confirm, press 2 to "
    "cancel.",
    es="Hola, le llamamos de {{ practice.name }} para {{ patient.first_name }}. Su cita con "
    "{{ appointment.provider }} es pasado mañana, el {{ appointment.date }} a las "
    "{{ appointment.time }}, en {{ appointment.location }}. Oprima 1 para confirmar, oprima 2 "
    "para cancelar.",
)
_add(
    "previsit-sameday",
    SMS,
    APPOINTMENT,
    L,
    en="{{ practice.name }}: See you today at {{ appointment.time }} at "
    "{{ appointment.location }}, {{ appointment.address }}. Directions and parking: "
    "{{ appointment.directions }}",
    es="{{ practice.name }}: Le esperamos hoy a las {{ appointment.time }} en "
    "{{ appointment.location }}, {{ appointment.address }}. Indicaciones y estacionamiento: "
    "{{ appointment.directions }}",
)
_add(
    "previsit-sameday",
    EMAIL,
    APPOINTMENT,
    L,
    en=(
        "Today: your appointment at {{ appointment.time }}",
        "Hello {{ patient.first_name }},\n\n"
        "We look forward to seeing you today.\n\n"
        "{{ appointment.time }} with {{ appointment.provider }}\n"
        "{{ appointment.location }}\n{{ appointment.address }}\n\n"
        "Directions and parking:\n{{ appointment.directions }}\n\n"
        "Please arrive 15 minutes early and bring your insurance card and a photo ID. If you "
        "are running late, call us at {{ practice.phone }}.\n\n{{ practice.name }}",
    ),
    es=(
        "Hoy: su cita a las {{ appointment.time }}",
        "Hola, {{ patient.first_name }}:\n\n"
        "Le esperamos hoy.\n\n"
        "{{ appointment.time }} con {{ appointment.provider }}\n"
        "{{ appointment.location }}\n{{ appointment.address }}\n\n"
        "Cómo llegar y dónde estacionarse:\n{{ appointment.directions }}\n\n"
        "Por favor, llegue 15 minutos antes y traiga su tarjeta de seguro médico y una "
        "identificación con foto. Si va a llegar tarde, llámenos al {{ practice.phone }}.\n\n"
        "{{ practice.name }}",
    ),
)
_add(
    "previsit-preregistration",
    SMS,
    APPOINTMENT,
    G,
    en="{{ practice.name }}: Save time at check-in: please complete your pre-registration "
    "before your visit: {{ link.form }}",
    es="{{ practice.name }}: Ahorre tiempo al llegar: complete su registro previo antes de su "
    "consulta: {{ link.form }}",
)
_add(
    "previsit-preregistration",
    EMAIL,
    APPOINTMENT,
    G,
    en=(
        "Pre-register for your visit",
        "Hello {{ patient.first_name }},\n\n"
        "Please complete your pre-registration before your visit to {{ practice.name }}. It "
        "saves time when you check in:\n{{ link.form }}\n\n"
        "Questions? Call us at {{ practice.phone }}.\n\nThank you,\n{{ practice.name }}",
    ),
    es=(
        "Complete su registro previo",
        "Hola, {{ patient.first_name }}:\n\n"
        "Por favor, complete su registro previo antes de su consulta en {{ practice.name }}. "
        "Así ahorrará tiempo al llegar:\n{{ link.form }}\n\n"
        "¿Tiene preguntas? Llámenos al {{ practice.phone }}.\n\n"
        "Atentamente,\n{{ practice.name }}",
    ),
)

# --- post-visit: instructions pointer, follow-up booking, satisfaction survey ------------

_add(
    "postvisit-instructions",
    SMS,
    APPOINTMENT,
    G,
    en="{{ practice.name }}: Thank you for your visit. Your visit instructions are ready in "
    "your patient portal: {{ link.portal }}",
    es="{{ practice.name }}: Gracias por su visita. Sus instrucciones de la consulta ya "
    "están en su portal del paciente: {{ link.portal }}",
)
_add(
    "postvisit-instructions",
    EMAIL,
    APPOINTMENT,
    G,
    en=(
        "Your visit instructions are in the portal",
        "Hello {{ patient.first_name }},\n\n"
        "Thank you for visiting {{ practice.name }}. Your visit instructions are ready in "
        "your patient portal:\n{{ link.portal }}\n\n"
        "If you have questions about them, send us a message in the portal or call "
        "{{ practice.phone }}.\n\nThank you,\n{{ practice.name }}",
    ),
    es=(
        "Sus instrucciones de la consulta están en el portal",
        "Hola, {{ patient.first_name }}:\n\n"
        "Gracias por visitar {{ practice.name }}. Sus instrucciones de la consulta ya están "
        "en su portal del paciente:\n{{ link.portal }}\n\n"
        "Si tiene preguntas sobre ellas, envíenos un mensaje por el portal o llame al "
        "{{ practice.phone }}.\n\nAtentamente,\n{{ practice.name }}",
    ),
)
_add(
    "postvisit-instructions",
    PORTAL,
    APPOINTMENT,
    S,
    en=(
        "Your visit instructions",
        "Thank you for your visit with {{ appointment.provider }} on {{ appointment.date }}. "
        "Your instructions are in your visit summary: {{ link.portal }}\n\n"
        "If anything is unclear, reply to this message or call us at {{ practice.phone }}.",
    ),
    es=(
        "Sus instrucciones de la consulta",
        "Gracias por su consulta con {{ appointment.provider }} el {{ appointment.date }}. "
        "Sus instrucciones están en el resumen de su consulta: {{ link.portal }}\n\n"
        "Si algo no le queda claro, responda a este mensaje o llámenos al "
        "{{ practice.phone }}.",
    ),
)
_add(
    "postvisit-followup",
    SMS,
    APPOINTMENT,
    G,
    en="{{ practice.name }}: Your care team would like to see you again for a follow-up "
    "visit. Book a time that suits you: {{ link.reschedule }}",
    es="{{ practice.name }}: Su equipo de salud quiere verle de nuevo en una consulta de "
    "seguimiento. Reserve el horario que le convenga: {{ link.reschedule }}",
)
_add(
    "postvisit-followup",
    EMAIL,
    APPOINTMENT,
    G,
    en=(
        "Time to book your follow-up visit",
        "Hello {{ patient.first_name }},\n\n"
        "Your care team at {{ practice.name }} would like to see you again for a follow-up "
        "visit. You can choose a day and time online:\n{{ link.reschedule }}\n\n"
        "Or call us at {{ practice.phone }}.\n\nThank you,\n{{ practice.name }}",
    ),
    es=(
        "Reserve su consulta de seguimiento",
        "Hola, {{ patient.first_name }}:\n\n"
        "Su equipo de salud en {{ practice.name }} quiere verle de nuevo en una consulta de "
        "seguimiento. Puede elegir el día y la hora en línea:\n{{ link.reschedule }}\n\n"
        "O llámenos al {{ practice.phone }}.\n\nAtentamente,\n{{ practice.name }}",
    ),
)
_add(
    "survey-satisfaction",
    SMS,
    SURVEY,
    G,
    en="{{ practice.name }}: How was your visit? Please tell us in a 2-minute survey: "
    "{{ link.form }} Reply STOP to opt out.",
    es="{{ practice.name }}: ¿Cómo fue su visita? Cuéntenos en una breve encuesta: "
    "{{ link.form }} Responda STOP para darse de baja.",
)
_add(
    "survey-satisfaction",
    EMAIL,
    SURVEY,
    G,
    en=(
        "How was your visit to {{ practice.name }}?",
        "Hello {{ patient.first_name }},\n\n"
        "Thank you for choosing {{ practice.name }}. We would like to know how your visit "
        "went. The survey takes about 2 minutes:\n{{ link.form }}\n\n"
        "Your answers help us care for you better.\n\nThank you,\n{{ practice.name }}",
    ),
    es=(
        "¿Cómo fue su visita a {{ practice.name }}?",
        "Hola, {{ patient.first_name }}:\n\n"
        "Gracias por elegir {{ practice.name }}. Nos gustaría saber cómo fue su visita. La "
        "encuesta toma unos 2 minutos:\n{{ link.form }}\n\n"
        "Sus respuestas nos ayudan a atenderle mejor.\n\nAtentamente,\n{{ practice.name }}",
    ),
)

# --- no-show recovery: same day, then 7 days later ---------------------------------------

_add(
    "noshow-reschedule",
    SMS,
    APPOINTMENT,
    L,
    en="{{ practice.name }}: We missed you today at {{ appointment.time }}. We hope all is "
    "well. Book a new time here: {{ link.reschedule }} or call {{ practice.phone }}.",
    es="{{ practice.name }}: Hoy no pudimos verle en su cita de las {{ appointment.time }}. "
    "Esperamos que todo esté bien. Reserve otro horario: {{ link.reschedule }} o llame al "
    "{{ practice.phone }}.",
)
_add(
    "noshow-reschedule",
    EMAIL,
    APPOINTMENT,
    L,
    en=(
        "We missed you today",
        "Hello {{ patient.first_name }},\n\n"
        "We missed you at your appointment today at {{ appointment.time }} with "
        "{{ appointment.provider }}. We hope all is well.\n\n"
        "You can book a new time in one click:\n{{ link.reschedule }}\n\n"
        "Or call us at {{ practice.phone }} and we will find a time that works for you.\n\n"
        "{{ practice.name }}",
    ),
    es=(
        "No pudimos verle hoy",
        "Hola, {{ patient.first_name }}:\n\n"
        "Hoy le esperábamos en su cita de las {{ appointment.time }} con "
        "{{ appointment.provider }}. Esperamos que todo esté bien.\n\n"
        "Puede reservar otro horario con un solo clic:\n{{ link.reschedule }}\n\n"
        "O llámenos al {{ practice.phone }} y buscaremos un horario que le convenga.\n\n"
        "{{ practice.name }}",
    ),
)
_add(
    "noshow-followup-7d",
    SMS,
    APPOINTMENT,
    L,
    en="{{ practice.name }}: We would still like to see you after the appointment you missed "
    "on {{ appointment.date }}. Book a new time: {{ link.reschedule }} or call "
    "{{ practice.phone }}.",
    es="{{ practice.name }}: Queremos atenderle después de la cita del "
    "{{ appointment.date }} a la que no pudo venir. Reserve otro horario: "
    "{{ link.reschedule }} o llame al {{ practice.phone }}.",
)
_add(
    "noshow-followup-7d",
    EMAIL,
    APPOINTMENT,
    L,
    en=(
        "Let's find a new time for your visit",
        "Hello {{ patient.first_name }},\n\n"
        "We would still like to see you after the appointment you missed on "
        "{{ appointment.date }} with {{ appointment.provider }}. Book a new time online:\n"
        "{{ link.reschedule }}\n\n"
        "Or call us at {{ practice.phone }}.\n\nThank you,\n{{ practice.name }}",
    ),
    es=(
        "Busquemos un nuevo horario para su consulta",
        "Hola, {{ patient.first_name }}:\n\n"
        "Todavía queremos atenderle después de la cita del {{ appointment.date }} con "
        "{{ appointment.provider }} a la que no pudo venir. Reserve otro horario en línea:\n"
        "{{ link.reschedule }}\n\n"
        "O llámenos al {{ practice.phone }}.\n\nAtentamente,\n{{ practice.name }}",
    ),
)

# --- care-gap recall: generic outside the portal, the measure named inside ---------------

_RECALL = {
    # key: (en SMS/e-mail wording, es wording, en portal subject, es portal subject)
    "gap-recall-before": (
        "you will soon be due for preventive care",
        "pronto le corresponde un servicio preventivo",
        "Coming up: {{ gap.measure }}",
        "Pronto le corresponde: {{ gap.measure }}",
    ),
    "gap-recall-due": (
        "you are now due for preventive care",
        "ya le corresponde un servicio preventivo",
        "Due now: {{ gap.measure }}",
        "Ya le corresponde: {{ gap.measure }}",
    ),
    "gap-recall-overdue": (
        "you are overdue for preventive care",
        "tiene pendiente un servicio preventivo",
        "Overdue: {{ gap.measure }}",
        "Pendiente: {{ gap.measure }}",
    ),
}
_RECALL_PORTAL = {
    "gap-recall-before": (
        "Our records show that you will soon be due for {{ gap.measure }}.",
        "Según nuestros registros, pronto le corresponde {{ gap.measure }}.",
    ),
    "gap-recall-due": (
        "Our records show that you are now due for {{ gap.measure }}.",
        "Según nuestros registros, ya le corresponde {{ gap.measure }}.",
    ),
    "gap-recall-overdue": (
        "Our records show that you are overdue for {{ gap.measure }}.",
        "Según nuestros registros, tiene pendiente {{ gap.measure }}.",
    ),
}
for _key, (_en, _es, _en_subject, _es_subject) in _RECALL.items():
    _add(
        _key,
        SMS,
        CARE,
        G,
        en=f"{{{{ practice.name }}}}: {_en.capitalize()}. See the details in your patient "
        "portal: {{ link.portal }} or call {{ practice.phone }}.",
        es=f"{{{{ practice.name }}}}: {_es.capitalize()}. Vea los detalles en su portal del "
        "paciente: {{ link.portal }} o llame al {{ practice.phone }}.",
    )
    _add(
        _key,
        EMAIL,
        CARE,
        G,
        en=(
            "A reminder about your preventive care",
            "Hello {{ patient.first_name }},\n\n"
            f"Our records show that {_en}. You can see the details, and book a visit, in "
            "your patient portal:\n{{ link.portal }}\n\n"
            "Or call us at {{ practice.phone }}. If you already had it done elsewhere, let us "
            "know so that we can update your record.\n\nThank you,\n{{ practice.name }}",
        ),
        es=(
            "Un recordatorio sobre sus servicios preventivos",
            "Hola, {{ patient.first_name }}:\n\n"
            f"Según nuestros registros, {_es}. Puede ver los detalles y reservar una consulta "
            "en su portal del paciente:\n{{ link.portal }}\n\n"
            "O llámenos al {{ practice.phone }}. Si ya se lo hizo en otro lugar, avísenos "
            "para actualizar su expediente.\n\nAtentamente,\n{{ practice.name }}",
        ),
    )
    _en_line, _es_line = _RECALL_PORTAL[_key]
    _add(
        _key,
        PORTAL,
        CARE,
        S,
        en=(
            _en_subject,
            f"{_en_line} Please book a visit at {{{{ link.portal }}}} or call us at "
            "{{ practice.phone }}.\n\n"
            "If you already had it done elsewhere, reply to this message so that we can "
            "update your record.",
        ),
        es=(
            _es_subject,
            f"{_es_line} Por favor, reserve una consulta en {{{{ link.portal }}}} o llámenos "
            "al {{ practice.phone }}.\n\n"
            "Si ya se lo hizo en otro lugar, responda a este mensaje para que podamos "
            "actualizar su expediente.",
        ),
    )

# --- chronic-condition cadence and medication check-ins ----------------------------------

_add(
    "chronic-checkin",
    SMS,
    CARE,
    G,
    en="{{ practice.name }}: It is time for your regular check-in with your care team. "
    "Book a visit: {{ link.portal }} or call {{ practice.phone }}.",
    es="{{ practice.name }}: Es momento de su control regular con su equipo de salud. "
    "Reserve una consulta: {{ link.portal }} o llame al {{ practice.phone }}.",
)
_add(
    "chronic-checkin",
    EMAIL,
    CARE,
    G,
    en=(
        "Time for your regular check-in",
        "Hello {{ patient.first_name }},\n\n"
        "It is time for your regular check-in with your care team at {{ practice.name }}. "
        "Regular visits help us keep your care plan up to date. Book a visit online:\n"
        "{{ link.portal }}\n\n"
        "Or call us at {{ practice.phone }}.\n\nThank you,\n{{ practice.name }}",
    ),
    es=(
        "Es momento de su control regular",
        "Hola, {{ patient.first_name }}:\n\n"
        "Es momento de su control regular con su equipo de salud en {{ practice.name }}. "
        "Las consultas regulares nos ayudan a mantener al día su plan de cuidado. Reserve "
        "una consulta en línea:\n{{ link.portal }}\n\n"
        "O llámenos al {{ practice.phone }}.\n\nAtentamente,\n{{ practice.name }}",
    ),
)
_add(
    "chronic-checkin",
    PORTAL,
    CARE,
    S,
    en=(
        "Your {{ condition.name }} check-in",
        "It is time for your regular {{ condition.name }} check-in with your care team. "
        "Regular visits help us adjust your care plan before problems start. Please book a "
        "visit at {{ link.portal }} or call us at {{ practice.phone }}.\n\n"
        "You can also reply to this message with any questions.",
    ),
    es=(
        "Su control de {{ condition.name }}",
        "Es momento de su control regular de {{ condition.name }} con su equipo de salud. "
        "Las consultas regulares nos ayudan a ajustar su plan de cuidado antes de que haya "
        "problemas. Por favor, reserve una consulta en {{ link.portal }} o llámenos al "
        "{{ practice.phone }}.\n\n"
        "También puede responder a este mensaje si tiene alguna pregunta.",
    ),
)
_add(
    "medication-checkin",
    SMS,
    CARE,
    G,
    en="{{ practice.name }}: Your care team sent you a short check-in in your patient "
    "portal: {{ link.portal }}",
    es="{{ practice.name }}: Su equipo de salud le envió unas preguntas breves en su portal "
    "del paciente: {{ link.portal }}",
)
_add(
    "medication-checkin",
    EMAIL,
    CARE,
    G,
    en=(
        "A short check-in from your care team",
        "Hello {{ patient.first_name }},\n\n"
        "Your care team at {{ practice.name }} sent you a short check-in. Please answer it "
        "in your patient portal:\n{{ link.portal }}\n\n"
        "Questions? Call us at {{ practice.phone }}.\n\nThank you,\n{{ practice.name }}",
    ),
    es=(
        "Unas preguntas breves de su equipo de salud",
        "Hola, {{ patient.first_name }}:\n\n"
        "Su equipo de salud en {{ practice.name }} le envió unas preguntas breves. Por "
        "favor, respóndalas en su portal del paciente:\n{{ link.portal }}\n\n"
        "¿Tiene preguntas? Llámenos al {{ practice.phone }}.\n\n"
        "Atentamente,\n{{ practice.name }}",
    ),
)
_add(
    "medication-checkin",
    PORTAL,
    CARE,
    S,
    en=(
        "How is {{ medication.name }} working for you?",
        "Your care team would like to know how {{ medication.name }} is working for you. Are "
        "you taking it as prescribed? Any side effects, or trouble getting refills?\n\n"
        "Reply to this message to let us know, or call us at {{ practice.phone }}. Please do "
        "not stop a medication without talking to us first.",
    ),
    es=(
        "¿Cómo le va con {{ medication.name }}?",
        "Su equipo de salud quiere saber cómo le va con {{ medication.name }}. ¿Lo está "
        "tomando como se lo recetaron? ¿Tiene efectos secundarios o dificultades para "
        "surtir la receta?\n\n"
        "Responda a este mensaje para contarnos, o llámenos al {{ practice.phone }}. Por "
        "favor, no deje de tomar ningún medicamento sin hablar antes con nosotros.",
    ),
)

# --- reactivation ------------------------------------------------------------------------

_add(
    "reactivation",
    SMS,
    CARE,
    G,
    en="{{ practice.name }}: It has been a while since your last visit. We are here when "
    "you need us. Book a visit: {{ link.portal }} or call {{ practice.phone }}.",
    es="{{ practice.name }}: Hace tiempo que no le vemos. Estamos para atenderle cuando nos "
    "necesite. Reserve una consulta: {{ link.portal }} o llame al {{ practice.phone }}.",
)
_add(
    "reactivation",
    EMAIL,
    CARE,
    G,
    en=(
        "We would love to see you again",
        "Hello {{ patient.first_name }},\n\n"
        "It has been a while since your last visit to {{ practice.name }}. A yearly check-up "
        "helps you stay on top of your health, and we are here when you need us. Book a "
        "visit online:\n{{ link.portal }}\n\n"
        "Or call us at {{ practice.phone }}.\n\nThank you,\n{{ practice.name }}",
    ),
    es=(
        "Nos gustaría volver a verle",
        "Hola, {{ patient.first_name }}:\n\n"
        "Hace tiempo que no le vemos en {{ practice.name }}. Un chequeo anual le ayuda a "
        "cuidar su salud, y estamos para atenderle cuando nos necesite. Reserve una consulta "
        "en línea:\n{{ link.portal }}\n\n"
        "O llámenos al {{ practice.phone }}.\n\nAtentamente,\n{{ practice.name }}",
    ),
)

# --- the pointer to a secure message -----------------------------------------------------

_add(
    "secure-message-notice",
    SMS,
    CARE,
    G,
    en="You have a new secure message from {{ practice.name }}. Read it in your patient "
    "portal: {{ link.portal }}",
    es="Tiene un mensaje seguro nuevo de {{ practice.name }}. Puede leerlo en su portal del "
    "paciente: {{ link.portal }}",
)
_add(
    "secure-message-notice",
    EMAIL,
    CARE,
    G,
    en=(
        "You have a new secure message from {{ practice.name }}",
        "Hello {{ patient.first_name }},\n\n"
        "You have a new secure message from {{ practice.name }}. To protect your privacy it "
        "is not sent by e-mail. Please read it in your patient portal:\n{{ link.portal }}\n\n"
        "Thank you,\n{{ practice.name }}",
    ),
    es=(
        "Tiene un mensaje seguro nuevo de {{ practice.name }}",
        "Hola, {{ patient.first_name }}:\n\n"
        "Tiene un mensaje seguro nuevo de {{ practice.name }}. Para proteger su privacidad, "
        "no se lo enviamos por correo electrónico. Por favor, léalo en su portal del "
        "paciente:\n{{ link.portal }}\n\n"
        "Atentamente,\n{{ practice.name }}",
    ),
)
_add(
    "secure-message-notice",
    PUSH,
    CARE,
    G,
    en=("{{ practice.name }}", "You have a new secure message from {{ practice.name }}."),
    es=("{{ practice.name }}", "Tiene un mensaje seguro nuevo de {{ practice.name }}."),
)

# --- answers to a Y/N reply --------------------------------------------------------------

_add(
    "appointment-confirmed",
    SMS,
    APPOINTMENT,
    L,
    en="{{ practice.name }}: Thank you! Your appointment on {{ appointment.date }} at "
    "{{ appointment.time }} is confirmed.",
    es="{{ practice.name }}: ¡Gracias! Su cita del {{ appointment.date }} a las "
    "{{ appointment.time }} está confirmada.",
)
_add(
    "appointment-cancelled",
    SMS,
    APPOINTMENT,
    L,
    en="{{ practice.name }}: Your appointment on {{ appointment.date }} at "
    "{{ appointment.time }} is cancelled. To book a new time, call {{ practice.phone }}.",
    es="{{ practice.name }}: Su cita del {{ appointment.date }} a las {{ appointment.time }} "
    "ha sido cancelada. Para reservar otro horario, llame al {{ practice.phone }}.",
)

# --- a booking made in the portal (careloop.portal.booking), once per appointment ---------

_add(
    "appointment-booked",
    SMS,
    APPOINTMENT,
    L,
    en="{{ practice.name }}: Your appointment is booked for {{ appointment.date }} at "
    "{{ appointment.time }}, {{ appointment.location }}. See or change it in your portal.",
    es="{{ practice.name }}: Su cita está reservada para el {{ appointment.date }} a las "
    "{{ appointment.time }}, {{ appointment.location }}. Véala o cámbiela en su portal.",
)
_add(
    "appointment-booked",
    EMAIL,
    APPOINTMENT,
    L,
    en=(
        "Your appointment is booked",
        "Hello {{ patient.first_name }},\n\n"
        "Your appointment at {{ practice.name }} is booked:\n\n"
        "{{ appointment.date }} at {{ appointment.time }}\n"
        "With {{ appointment.provider }}\n"
        "{{ appointment.location }}\n{{ appointment.address }}\n\n"
        "To see, change or cancel it, sign in to your patient portal:\n{{ link.portal }}\n\n"
        "Thank you,\n{{ practice.name }}",
    ),
    es=(
        "Su cita está reservada",
        "Hola, {{ patient.first_name }}:\n\n"
        "Su cita en {{ practice.name }} está reservada:\n\n"
        "{{ appointment.date }} a las {{ appointment.time }}\n"
        "Con {{ appointment.provider }}\n"
        "{{ appointment.location }}\n{{ appointment.address }}\n\n"
        "Para verla, cambiarla o cancelarla, entre en su portal del paciente:\n"
        "{{ link.portal }}\n\n"
        "Atentamente,\n{{ practice.name }}",
    ),
)

# --- patient portal: one-time codes and sign-in links (careloop.portal.accounts) ----------
# Sent under the appointment purpose (no frequency cap, opt-out rather than opt-in): a
# patient asked for them seconds ago. Each says what to do if they did not ask.

_add(
    "portal-verify-code",
    SMS,
    APPOINTMENT,
    G,
    en="{{ practice.name }}: Your patient portal code is {{ portal.code }}. It expires in 15 "
    "minutes. If you did not ask for it, ignore this text.",
    es="{{ practice.name }}: Su código del portal del paciente es {{ portal.code }}. Vence en "
    "15 minutos. Si no lo pidió, ignore este mensaje.",
)
_add(
    "portal-verify-code",
    EMAIL,
    APPOINTMENT,
    G,
    en=(
        "Your patient portal code",
        "Your code to set up your {{ practice.name }} patient portal account is:\n\n"
        "{{ portal.code }}\n\n"
        "It expires in 15 minutes and works once. If you did not ask for it, you can "
        "ignore this e-mail; questions: {{ practice.phone }}.",
    ),
    es=(
        "Su código del portal del paciente",
        "Su código para crear su cuenta del portal del paciente de {{ practice.name }} es:\n\n"
        "{{ portal.code }}\n\n"
        "Vence en 15 minutos y funciona una sola vez. Si no lo pidió, puede ignorar este "
        "correo; preguntas: {{ practice.phone }}.",
    ),
)
_add(
    "portal-signin-link",
    EMAIL,
    APPOINTMENT,
    G,
    en=(
        "Your sign-in link for {{ practice.name }}",
        "Use this link to sign in to your patient portal:\n{{ link.signin }}\n\n"
        "It expires in 15 minutes and works once. If you did not ask for it, you can "
        "ignore this e-mail; questions: {{ practice.phone }}.",
    ),
    es=(
        "Su enlace para iniciar sesión en {{ practice.name }}",
        "Use este enlace para iniciar sesión en su portal del paciente:\n{{ link.signin }}\n\n"
        "Vence en 15 minutos y funciona una sola vez. Si no lo pidió, puede ignorar este "
        "correo; preguntas: {{ practice.phone }}.",
    ),
)

# --- waitlist: an earlier time is free; the time was taken (careloop.scheduling.waitlist) --
# The offer's link (`link.confirm`) is its one-click claim page (`/w/<code>`).

_add(
    "waitlist-offer",
    SMS,
    APPOINTMENT,
    L,
    en="{{ practice.name }}: An earlier time is free: {{ appointment.date }} at "
    "{{ appointment.time }}. First to book it gets it: {{ link.confirm }}",
    es="{{ practice.name }}: Hay una hora libre antes: {{ appointment.date }} a las "
    "{{ appointment.time }}. La primera persona que la reserve la obtiene: {{ link.confirm }}",
)
_add(
    "waitlist-offer",
    EMAIL,
    APPOINTMENT,
    L,
    en=(
        "An earlier appointment is free: {{ appointment.date }}",
        "Hello {{ patient.first_name }},\n\n"
        "You asked us for an earlier visit. This time has just opened up:\n\n"
        "{{ appointment.date }} at {{ appointment.time }}\n"
        "With {{ appointment.provider }}\n"
        "{{ appointment.location }}\n{{ appointment.address }}\n\n"
        "We offered it to a few patients on our waitlist; the first to book it gets it. "
        "To book it: {{ link.confirm }}\n\n"
        "If it does not suit you, do nothing: you stay on the waitlist.\n\n"
        "Thank you,\n{{ practice.name }} · {{ practice.phone }}",
    ),
    es=(
        "Hay una cita libre antes: {{ appointment.date }}",
        "Hola, {{ patient.first_name }}:\n\n"
        "Usted nos pidió una cita antes. Esta hora acaba de quedar libre:\n\n"
        "{{ appointment.date }} a las {{ appointment.time }}\n"
        "Con {{ appointment.provider }}\n"
        "{{ appointment.location }}\n{{ appointment.address }}\n\n"
        "La ofrecimos a algunos pacientes de nuestra lista de espera; la primera persona "
        "que la reserve la obtiene. Para reservarla: {{ link.confirm }}\n\n"
        "Si no le conviene, no haga nada: sigue en la lista de espera.\n\n"
        "Atentamente,\n{{ practice.name }} · {{ practice.phone }}",
    ),
)
_add(
    "waitlist-slot-gone",
    SMS,
    APPOINTMENT,
    L,
    en="{{ practice.name }}: The time on {{ appointment.date }} at {{ appointment.time }} "
    "has been taken. You are still on our waitlist.",
    es="{{ practice.name }}: La hora del {{ appointment.date }} a las {{ appointment.time }} "
    "ya fue reservada. Usted sigue en nuestra lista de espera.",
)
_add(
    "waitlist-slot-gone",
    EMAIL,
    APPOINTMENT,
    L,
    en=(
        "The earlier time has been taken",
        "Hello {{ patient.first_name }},\n\n"
        "The time we offered you, {{ appointment.date }} at {{ appointment.time }}, has "
        "been taken by another patient. Nothing was changed: you are still on our "
        "waitlist, and we will write when another time opens.\n\n"
        "Thank you,\n{{ practice.name }} · {{ practice.phone }}",
    ),
    es=(
        "La hora que le ofrecimos ya fue reservada",
        "Hola, {{ patient.first_name }}:\n\n"
        "La hora que le ofrecimos, el {{ appointment.date }} a las {{ appointment.time }}, "
        "ya fue reservada por otro paciente. No se cambió nada: sigue en nuestra lista de "
        "espera y le escribiremos cuando haya otra hora libre.\n\n"
        "Atentamente,\n{{ practice.name }} · {{ practice.phone }}",
    ),
)
