import pytest

from webhooks.auto_reply import is_auto_reply

AUTO_REPLIES = {
    "exchange_english": (
        "Automatic reply: ",
        "Thank you for your message. I am out of the office until Monday 13 October.",
        {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"},
    ),
    "gmail_vacation_header_only": ("Back next week", "Thanks for reaching out!", {"auto-submitted": "auto-replied"}),
    "x_autoreply_header": ("Re: ", "Got it.", {"X-Autoreply": "yes"}),
    "x_autorespond_header": ("Re: ", "Thanks", {"X-Autorespond": "Thanks for your mail"}),
    "precedence_bulk": ("Re: ", "We received your request.", {"Precedence": "bulk"}),
    "english_body_without_headers": (
        "Re: ",
        "Hi,\n\nThank you for your email. I am currently out of the office with limited access to email "
        "and will return on 14 October. For urgent matters please contact jane@brightlane.example.com.",
        {},
    ),
    "english_announces_itself": ("Re: ", "This is an automated response: your message has been received.", None),
    "lotus_notes_subject": ("AUTO: Maya Patel is out of the office (returning 14/10/2025)", "", {}),
    "german": (
        "Abwesenheitsnotiz: ",
        "Vielen Dank für Ihre Nachricht. Ich bin bis einschließlich 17.10. nicht im Büro. "
        "In dringenden Fällen wenden Sie sich bitte an meine Kollegin.",
        {},
    ),
    "german_body_only": (
        "AW: ",
        "Guten Tag,\nich befinde mich bis zum 20. Oktober im Urlaub. Ihre E-Mail wird nach meiner Rückkehr bearbeitet.",
        {},
    ),
    "french": (
        "Re: ",
        "Bonjour,\nJe suis absente du bureau jusqu'au 20 octobre. Pour toute urgence, contactez Paul.",
        {},
    ),
    "french_subject": ("Réponse automatique : ", "Merci pour votre message.", {}),
    "spanish": (
        "RE: ",
        "Gracias por su mensaje. Estoy fuera de la oficina hasta el lunes 13 de octubre. "
        "Para asuntos urgentes, escriba a ventas@brightlane.example.com.",
        {},
    ),
    "spanish_subject": ("Respuesta automática: ", "", {}),
}

HUMAN_REPLIES = {
    "was_out_of_office": ("Re: ", "I was out of office last week, but yes let's talk", {}),
    "out_friday_but_interested": ("Re: ", "Thanks! I'm out of the office Friday but Monday works for a call.", {}),
    "was_on_vacation": ("Re: ", "Sorry for the slow reply, I was on vacation. Yes, send me a few times.", {}),
    "mentions_autoreply_tool": ("Re: ", "We already use an automatic reply tool, so not interested.", {}),
    "auto_submitted_no": ("Re: ", "Sounds good, book a call for Tuesday.", {"Auto-Submitted": "no"}),
    "precedence_first_class": ("Re: ", "Interested, what does it cost?", {"Precedence": "first-class"}),
    "suppress_header_without_oof": ("Re: ", "Interested.", {"X-Auto-Response-Suppress": "RN, NRN"}),
    "german_was_on_holiday": ("AW: ", "Ich war letzte Woche im Urlaub, aber gerne können wir telefonieren.", {}),
    "french_human": ("RE: ", "J'étais absent la semaine dernière. Oui, parlons-en jeudi.", {}),
    "spanish_human": ("RE: ", "Estuve de vacaciones, pero sí, hablemos el martes.", {}),
    "vacation_in_subject_only": ("Vacation rental software?", "Yes, tell me more.", {}),
    "quoted_ooo_further_down": (
        "Re: ",
        "Yes, let's talk on Tuesday." + "\n" * 20 + "x" * 500 + "\n> I am out of the office with limited access",
        {},
    ),
}


@pytest.mark.parametrize(("subject", "text", "headers"), AUTO_REPLIES.values(), ids=AUTO_REPLIES.keys())
def test_auto_replies_are_recognised(subject, text, headers):
    assert is_auto_reply(subject=subject, text=text, headers=headers) is True


@pytest.mark.parametrize(("subject", "text", "headers"), HUMAN_REPLIES.values(), ids=HUMAN_REPLIES.keys())
def test_human_replies_are_not_auto_replies(subject, text, headers):
    assert is_auto_reply(subject=subject, text=text, headers=headers) is False


def test_header_names_and_repeated_values_are_read_case_insensitively():
    assert is_auto_reply(subject="", text="", headers={"PRECEDENCE": ["list", "Junk"]})
    assert not is_auto_reply(subject="", text="", headers={"precedence": ["list"]})
