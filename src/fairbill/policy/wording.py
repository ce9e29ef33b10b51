"""Each clause stated plainly for customers, in English and French, from its own fields.

``WORDING[lang][kind]`` is the template of a clause kind: a function of the clause and a
``Words`` (the language's units, lists and Babel-formatted money) returning one or a few
sentences. Every figure in a sentence is a field of the clause (a window, a fee, a
deadline), never a constant. A kind without a template in a language is stated by
``fallback``, which lists the clause's fields, so no clause is ever left out.

Pure: no I/O. ``policy.render`` assembles the statements into the customer document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

from babel.numbers import format_currency, format_decimal

from fairbill.policy.model import (
    AccountClosure,
    Activation,
    Appeals,
    BillingTerms,
    CancellationRefund,
    CancellationTiming,
    ClauseBase,
    CoolingOff,
    DataRetention,
    Deadlines,
    DeclineGround,
    Destination,
    Disputes,
    Dunning,
    ExceptionRefund,
    Fees,
    MoneyBackGuarantee,
    NonRefundable,
    OutageCompensation,
    Outcome,
    PlanChange,
    PrepaidCredits,
    Promotions,
    RefundBasis,
    RefundDestination,
    RequestKind,
    RequestRequirements,
    TermsAcceptance,
    TermsChange,
    Trials,
    UsageTiers,
    Violations,
)

# Fields every clause has: stated by the document around the statement, not in it.
_COMMON = frozenset({"id", "kind", "source", "reading"})

_UNITS = {
    "en": {
        "day": ("day", "days"),
        "business_day": ("business day", "business days"),
        "hour": ("hour", "hours"),
        "time": ("time", "times"),
    },
    "fr": {
        "day": ("jour", "jours"),
        "business_day": ("jour ouvrable", "jours ouvrables"),
        "hour": ("heure", "heures"),
        "time": ("fois", "fois"),
    },
}
_AND = {"en": "and", "fr": "et"}
_OR = {"en": "or", "fr": "ou"}


@dataclass(frozen=True, slots=True)
class Words:
    """Formatting for one language and the policy's currency."""

    lang: str
    currency: str

    def n(self, count: int, unit: str) -> str:
        """``14 days``, ``1 jour ouvrable``: the count and its unit, singular or plural."""
        one, many = _UNITS[self.lang][unit]
        return f"{self.number(count)} {one if count == 1 else many}"

    def number(self, value: int | Decimal) -> str:
        return str(format_decimal(value, locale=self.lang))

    def money(self, amount: Decimal) -> str:
        """An amount in the policy's currency: ``ZAR1,000,000.00``, ``1 000 000,00 ZAR``."""
        return str(format_currency(amount, self.currency, locale=self.lang))

    def percent(self, value: Decimal) -> str:
        return f"{self.number(value)}%" if self.lang == "en" else f"{self.number(value)}\u00a0%"

    def all_of(self, items: Iterable[str]) -> str:
        return _join(list(items), _AND[self.lang])

    def any_of(self, items: Iterable[str]) -> str:
        return _join(list(items), _OR[self.lang])

    def pick(self, table: Mapping[str, str], value: object) -> str:
        """The words for an enum or Literal value (the value itself if the table lacks it)."""
        key = str(value.value) if isinstance(value, Enum) else str(value)
        return table.get(key, key.replace("_", " "))


def _join(items: list[str], word: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _spaced(*parts: str) -> str:
    """Sentences joined by one space, empty ones left out."""
    return " ".join(p.strip() for p in parts if p.strip())


Template = Callable[[Any, Words], str]

# -- shared vocabularies ----------------------------------------------------------------------
_BASIS = {
    "en": {
        "full": "the full payment",
        "unused_days": "the unused days of the period, pro rata",
        "full_if_unused": (
            "the full payment if you have not used the service since, otherwise the unused "
            "days pro rata"
        ),
        "full_remaining_months": "each full month left after the current month",
        "overcharge": "the amount charged in excess",
        "duration": "the price of the interruption's duration, pro rata",
        "none": "nothing",
    },
    "fr": {
        "full": "l'intégralité du paiement",
        "unused_days": "les jours non utilisés de la période, au prorata",
        "full_if_unused": (
            "l'intégralité du paiement si vous n'avez pas utilisé le service depuis, sinon les "
            "jours non utilisés au prorata"
        ),
        "full_remaining_months": "chaque mois complet restant après le mois en cours",
        "overcharge": "le montant facturé en trop",
        "duration": "le prix de la durée de l'interruption, au prorata",
        "none": "rien",
    },
}
_DESTINATION = {
    "en": {
        "original_method": "to your original payment method",
        "wallet": "to your account balance",
    },
    "fr": {
        "original_method": "sur votre moyen de paiement d'origine",
        "wallet": "sur le solde de votre compte",
    },
}
_REQUEST_KIND = {
    "en": {
        "money_back": "the money-back guarantee",
        "unused_period": "an unused period",
        "duplicate_charge": "a duplicate charge",
        "billing_error": "a billing error",
        "overpayment": "an overpayment",
        "unauthorized": "an unauthorized payment",
        "non_delivery": "a service not delivered",
        "service_disruption": "a service disruption",
        "payment_by_mistake": "a payment made by mistake",
        "terms_declined": "declined new terms",
        "cooling_off": "the cooling-off right",
        "failed_delivery": "messages not delivered",
        "exceptional": "exceptional cases",
    },
    "fr": {
        "money_back": "la garantie de remboursement",
        "unused_period": "une période non utilisée",
        "duplicate_charge": "un paiement en double",
        "billing_error": "une erreur de facturation",
        "overpayment": "un paiement supérieur au montant dû",
        "unauthorized": "un paiement non autorisé",
        "non_delivery": "un service non fourni",
        "service_disruption": "une interruption de service",
        "payment_by_mistake": "un paiement effectué par erreur",
        "terms_declined": "le refus de nouvelles conditions",
        "cooling_off": "le droit de rétractation",
        "failed_delivery": "des messages non délivrés",
        "exceptional": "des cas exceptionnels",
    },
}


def _basis(w: Words, basis: object) -> str:
    return w.pick(_BASIS[w.lang], basis)


def _destination(w: Words, destination: object) -> str:
    return w.pick(_DESTINATION[w.lang], destination)


# -- billing & renewal ----------------------------------------------------------------------
def _en_billing_terms(c: BillingTerms, w: Words) -> str:
    return _spaced(
        "Subscriptions are billed in advance, at the start of each billing period."
        if c.in_advance
        else "Subscriptions are billed at the end of each billing period.",
        "They renew automatically on the same date each period until you cancel."
        if c.auto_renew
        else "They do not renew automatically.",
    )


def _fr_billing_terms(c: BillingTerms, w: Words) -> str:
    return _spaced(
        "Les abonnements sont facturés à l'avance, au début de chaque période de facturation."
        if c.in_advance
        else "Les abonnements sont facturés à la fin de chaque période de facturation.",
        "Ils se renouvellent automatiquement à la même date à chaque période, sauf annulation."
        if c.auto_renew
        else "Ils ne se renouvellent pas automatiquement.",
    )


def _en_plan_change(c: PlanChange, w: Words) -> str:
    up = {
        "immediate_prorated": "An upgrade takes effect at once: you pay the price difference "
        "for the rest of the current period, pro rata.",
        "end_of_period": "An upgrade takes effect at the end of the current period.",
    }
    down = {
        "end_of_period": "A downgrade takes effect at the end of the current period.",
        "cancel_and_resubscribe": "To downgrade, cancel your subscription and subscribe to "
        "the lower plan from the start of your next billing period.",
        "immediate_credit": "A downgrade takes effect at once, with a credit for the price "
        "difference over the rest of the current period.",
    }
    refund = ""
    if c.downgrade != "immediate_credit":
        refund = (
            "The price difference of a downgrade is refunded."
            if c.downgrade_refund
            else "The price difference of a downgrade is not refunded."
        )
    return _spaced(w.pick(up, c.upgrade), w.pick(down, c.downgrade), refund)


def _fr_plan_change(c: PlanChange, w: Words) -> str:
    up = {
        "immediate_prorated": "Le passage à un plan supérieur prend effet immédiatement : "
        "vous payez la différence de prix pour le reste de la période en cours, au prorata.",
        "end_of_period": "Le passage à un plan supérieur prend effet à la fin de la période "
        "en cours.",
    }
    down = {
        "end_of_period": "Le passage à un plan inférieur prend effet à la fin de la période "
        "en cours.",
        "cancel_and_resubscribe": "Pour passer à un plan inférieur, annulez votre abonnement "
        "et souscrivez le plan inférieur à partir de votre prochaine période de facturation.",
        "immediate_credit": "Le passage à un plan inférieur prend effet immédiatement, avec "
        "un avoir pour la différence de prix sur le reste de la période en cours.",
    }
    refund = ""
    if c.downgrade != "immediate_credit":
        refund = (
            "La différence de prix d'un passage à un plan inférieur est remboursée."
            if c.downgrade_refund
            else "La différence de prix d'un passage à un plan inférieur n'est pas remboursée."
        )
    return _spaced(w.pick(up, c.upgrade), w.pick(down, c.downgrade), refund)


def _en_usage_tiers(c: UsageTiers, w: Words) -> str:
    return _spaced(
        "Your price follows your usage tier. When your usage reaches a higher tier, the new "
        "price applies at once, pro rata for the rest of the period.",
        "When it falls to a lower tier, you receive a credit note on your next invoice."
        if c.down == "credit_note_next_invoice"
        else "When it falls to a lower tier, no credit is given for the current period.",
        f"Tier changes are detected within {w.n(c.detection_hours, 'hour')}.",
    )


def _fr_usage_tiers(c: UsageTiers, w: Words) -> str:
    return _spaced(
        "Votre prix suit votre palier d'utilisation. Lorsque votre utilisation atteint un "
        "palier supérieur, le nouveau prix s'applique immédiatement, au prorata du reste de la "
        "période.",
        "Lorsqu'elle redescend à un palier inférieur, vous recevez un avoir sur votre "
        "prochaine facture."
        if c.down == "credit_note_next_invoice"
        else "Lorsqu'elle redescend à un palier inférieur, aucun avoir n'est accordé pour la "
        "période en cours.",
        "Les changements de palier sont détectés dans un délai de "
        f"{w.n(c.detection_hours, 'hour')}.",
    )


def _en_trials(c: Trials, w: Words) -> str:
    return _spaced(
        "A free trial needs a payment card."
        if c.card_required
        else "A free trial needs no payment card.",
        "It becomes a paid subscription automatically when it ends."
        if c.converts_automatically
        else "It does not become a paid subscription by itself: to continue after it, buy a "
        "paid plan.",
        "Trial credits carry over to a paid plan."
        if c.credits_roll_over
        else "Trial credits do not carry over to a paid plan.",
    )


def _fr_trials(c: Trials, w: Words) -> str:
    return _spaced(
        "Un essai gratuit nécessite une carte de paiement."
        if c.card_required
        else "Un essai gratuit ne nécessite aucune carte de paiement.",
        "Il devient automatiquement un abonnement payant à son terme."
        if c.converts_automatically
        else "Il ne devient pas payant de lui-même : pour continuer, souscrivez un plan payant.",
        "Les crédits d'essai sont reportés sur un plan payant."
        if c.credits_roll_over
        else "Les crédits d'essai ne sont pas reportés sur un plan payant.",
    )


def _en_activation(c: Activation, w: Words) -> str:
    if c.notify_on_payment:
        return (
            "Once your registration and payment succeed, we send your activation details by email."
        )
    return "Your service is activated once your registration and payment succeed."


def _fr_activation(c: Activation, w: Words) -> str:
    if c.notify_on_payment:
        return (
            "Une fois votre inscription et votre paiement validés, nous vous envoyons vos "
            "informations d'activation par e-mail."
        )
    return "Votre service est activé une fois votre inscription et votre paiement validés."


# -- cancelling -----------------------------------------------------------------------------
def _en_cancellation_timing(c: CancellationTiming, w: Words) -> str:
    channels = {
        "portal": "in your account",
        "support": "by contacting support",
        "written": "in writing",
    }
    effective = {
        "end_of_period": "A cancellation takes effect at the end of the current billing period.",
        "end_of_commitment": "A cancellation takes effect at the end of your commitment term; "
        "every remaining period of the term is still billed.",
        "end_of_month_period": "A cancellation takes effect at the end of the current monthly "
        "period, for monthly and annual plans alike.",
    }
    how = w.any_of(w.pick(channels, ch) for ch in c.channels)
    return _spaced(
        f"You can cancel at any time {how}." if how else "You can cancel at any time.",
        w.pick(effective, c.effective),
        "You keep access until then.",
        "You can also ask for a cancellation to take effect at once." if c.immediate_option else "",
        "A cancellation made on a renewal date takes effect only after that renewal."
        if c.cutoff_before_renewal
        else "",
    )


def _fr_cancellation_timing(c: CancellationTiming, w: Words) -> str:
    channels = {
        "portal": "depuis votre compte",
        "support": "en contactant le support",
        "written": "par écrit",
    }
    effective = {
        "end_of_period": "L'annulation prend effet à la fin de la période de facturation en cours.",
        "end_of_commitment": "L'annulation prend effet à la fin de votre période d'engagement ; "
        "les périodes restantes de l'engagement restent facturées.",
        "end_of_month_period": "L'annulation prend effet à la fin de la période mensuelle en "
        "cours, pour les plans mensuels comme annuels.",
    }
    how = w.any_of(w.pick(channels, ch) for ch in c.channels)
    return _spaced(
        f"Vous pouvez annuler à tout moment {how}."
        if how
        else "Vous pouvez annuler à tout moment.",
        w.pick(effective, c.effective),
        "Vous gardez l'accès jusque-là.",
        "Vous pouvez aussi demander qu'une annulation prenne effet immédiatement."
        if c.immediate_option
        else "",
        "Une annulation faite le jour d'un renouvellement ne prend effet qu'après ce "
        "renouvellement."
        if c.cutoff_before_renewal
        else "",
    )


def _en_cancellation_refund(c: CancellationRefund, w: Words) -> str:
    plans = {"month": "monthly", "year": "annual", "multi_month": "multi-month"}
    scope = f"For {w.all_of(w.pick(plans, i) for i in c.intervals)} plans, " if c.intervals else ""
    who = (
        "a cancellation that ends the service at once"
        if c.when == "immediate"
        else "a cancellation"
    )
    what = {
        "none": "gives no refund.",
        "unused_days": "refunds the unused days of the current period, pro rata.",
        "full_remaining_months": "refunds each full month left after the current month "
        "(the price × the months left / the months in the term).",
    }
    return _spaced(
        _cap(f"{scope}{who} {w.pick(what, c.refund)}"),
        "Our team reviews the refund first." if c.decision == Outcome.NEEDS_REVIEW else "",
    )


def _fr_cancellation_refund(c: CancellationRefund, w: Words) -> str:
    plans = {"month": "mensuels", "year": "annuels", "multi_month": "de plusieurs mois"}
    scope = (
        f"Pour les plans {w.all_of(w.pick(plans, i) for i in c.intervals)}, " if c.intervals else ""
    )
    who = (
        "une annulation qui met fin au service immédiatement"
        if c.when == "immediate"
        else "une annulation"
    )
    what = {
        "none": "ne donne lieu à aucun remboursement.",
        "unused_days": "donne lieu au remboursement des jours non utilisés de la période en "
        "cours, au prorata.",
        "full_remaining_months": "donne lieu au remboursement de chaque mois complet restant "
        "après le mois en cours (le prix × les mois restants / les mois de la période).",
    }
    return _spaced(
        _cap(f"{scope}{who} {w.pick(what, c.refund)}"),
        "Notre équipe examine d'abord le remboursement."
        if c.decision == Outcome.NEEDS_REVIEW
        else "",
    )


def _en_account_closure(c: AccountClosure, w: Words) -> str:
    start = (
        "Closing your account counts as a cancellation"
        if c.treated_as_cancellation
        else "Closing your account ends the service"
    )
    credits = "; your unused credits are forfeited" if c.forfeit_credits else ""
    return f"{start}, with no refund for the time left{credits}."


def _fr_account_closure(c: AccountClosure, w: Words) -> str:
    start = (
        "La fermeture de votre compte vaut annulation"
        if c.treated_as_cancellation
        else "La fermeture de votre compte met fin au service"
    )
    credits = " ; vos crédits non utilisés sont perdus" if c.forfeit_credits else ""
    return f"{start}, sans remboursement du temps restant{credits}."


# -- refunds & guarantees -------------------------------------------------------------------
def _en_money_back_guarantee(c: MoneyBackGuarantee, w: Words) -> str:
    start = (
        "your initial subscription" if c.window_from == "initial_subscription" else "the payment"
    )
    how = "cancel" if c.via == "cancel" else "ask for a refund"
    lead = f"Within {w.n(c.window_days, 'day')} of {start}, you can {how}"
    if c.decision == Outcome.NEEDS_REVIEW:
        rule = f"{lead}; our team reviews each request and may refund {_basis(w, c.refund)}."
    else:
        rule = f"{lead}, and we refund {_basis(w, c.refund)}."
    ends = "at once" if c.ends_service == "immediately" else "at the end of the current period"
    return _spaced(
        rule,
        "This guarantee covers your first purchase only." if c.first_purchase_only else "",
        f"A refund under this guarantee ends the service {ends}.",
    )


def _fr_money_back_guarantee(c: MoneyBackGuarantee, w: Words) -> str:
    start = "votre abonnement initial" if c.window_from == "initial_subscription" else "le paiement"
    how = "annuler" if c.via == "cancel" else "demander un remboursement"
    lead = f"Dans les {w.n(c.window_days, 'day')} suivant {start}, vous pouvez {how}"
    if c.decision == Outcome.NEEDS_REVIEW:
        rule = (
            f"{lead} ; notre équipe examine chaque demande et peut rembourser "
            f"{_basis(w, c.refund)}."
        )
    else:
        rule = f"{lead}, et nous remboursons {_basis(w, c.refund)}."
    ends = "immédiatement" if c.ends_service == "immediately" else "à la fin de la période en cours"
    return _spaced(
        rule,
        "Cette garantie ne vaut que pour votre premier achat." if c.first_purchase_only else "",
        f"Un remboursement au titre de cette garantie met fin au service {ends}.",
    )


def _en_cooling_off(c: CoolingOff, w: Words) -> str:
    types = {"consumer": "a consumer", "business": "a business"}
    via = {"direct_marketing": "through direct marketing", "self_serve": "on your own"}
    written = " by written notice" if c.written_notice else ""
    return _spaced(
        f"If you signed up as {w.any_of(w.pick(types, t) for t in c.customer_types)} "
        f"{w.any_of(w.pick(via, a) for a in c.acquisition)}, you can cancel within "
        f"{w.n(c.business_days, 'business_day')}{written}, and we refund "
        f"{_basis(w, c.refund)}.",
        f"This applies to agreements of up to {w.money(c.max_amount)}."
        if c.max_amount is not None
        else "",
        "Our team reviews each request." if c.decision == Outcome.NEEDS_REVIEW else "",
    )


def _fr_cooling_off(c: CoolingOff, w: Words) -> str:
    types = {"consumer": "consommateur", "business": "entreprise"}
    via = {"direct_marketing": "à la suite d'un démarchage", "self_serve": "de vous-même"}
    written = " par écrit" if c.written_notice else ""
    return _spaced(
        "Si vous vous êtes abonné en tant que "
        f"{w.any_of(w.pick(types, t) for t in c.customer_types)} "
        f"{w.any_of(w.pick(via, a) for a in c.acquisition)}, vous pouvez annuler{written} dans "
        f"les {w.n(c.business_days, 'business_day')}, et nous remboursons "
        f"{_basis(w, c.refund)}.",
        f"Cela vaut pour les contrats d'au plus {w.money(c.max_amount)}."
        if c.max_amount is not None
        else "",
        "Notre équipe examine chaque demande." if c.decision == Outcome.NEEDS_REVIEW else "",
    )


def _en_non_refundable(c: NonRefundable, w: Words) -> str:
    items = {
        "subscription": "subscriptions",
        "message_credits": "prepaid message credits",
        "setup_fee": "setup fees",
        "training": "training",
        "add_on": "add-ons",
        "data_product": "data products",
        "overage": "overage fees",
        "promotional": "promotional offers",
    }
    return (
        "The following are not refunded on request once delivered or started: "
        f"{w.all_of(w.pick(items, i) for i in c.items)}."
    )


def _fr_non_refundable(c: NonRefundable, w: Words) -> str:
    items = {
        "subscription": "les abonnements",
        "message_credits": "les crédits de messages prépayés",
        "setup_fee": "les frais de mise en service",
        "training": "les formations",
        "add_on": "les options",
        "data_product": "les produits de données",
        "overage": "les dépassements",
        "promotional": "les offres promotionnelles",
    }
    return (
        "Ne sont pas remboursés sur demande une fois fournis ou commencés : "
        f"{w.all_of(w.pick(items, i) for i in c.items)}."
    )


_EXCEPTION_LEAD = {
    "en": {
        "duplicate_charge": "If you are charged twice for the same thing",
        "billing_error": "If we make a billing error",
        "overpayment": "If you pay more than the amount due",
        "unauthorized": "If your payment method was used without your authorization",
        "non_delivery": "If we fail to deliver the service you paid for",
        "payment_by_mistake": "If you made a payment by mistake",
        "terms_declined": "If you decline new terms we have told you of",
        "exceptional": "In other exceptional cases",
        "unused_period": "For a period you have not used",
    },
    "fr": {
        "duplicate_charge": "En cas de double facturation",
        "billing_error": "En cas d'erreur de facturation de notre part",
        "overpayment": "Si vous payez plus que le montant dû",
        "unauthorized": "Si votre moyen de paiement a été utilisé sans votre autorisation",
        "non_delivery": "Si nous ne fournissons pas le service que vous avez payé",
        "payment_by_mistake": "Si vous avez effectué un paiement par erreur",
        "terms_declined": "Si vous refusez de nouvelles conditions que nous vous avons notifiées",
        "exceptional": "Dans d'autres cas exceptionnels",
        "unused_period": "Pour une période que vous n'avez pas utilisée",
    },
}


def _exception_rule(c: ExceptionRefund, w: Words) -> str:
    """The decision of an exception: "<lead>, we refund …" in ``w.lang``."""
    lead = w.pick(_EXCEPTION_LEAD[w.lang], c.reason)
    basis = _basis(w, c.basis)
    en = w.lang == "en"
    if c.decision == Outcome.DECLINED:
        return f"{lead}, " + ("no refund is given." if en else "aucun remboursement n'est accordé.")
    if c.basis == RefundBasis.NONE:
        return f"{lead}, " + (
            "our team decides case by case." if en else "notre équipe décide au cas par cas."
        )
    if c.decision == Outcome.NEEDS_REVIEW:
        return f"{lead}, " + (
            f"our team reviews the request and may refund {basis}."
            if en
            else f"notre équipe examine la demande et peut rembourser {basis}."
        )
    return f"{lead}, " + (f"we refund {basis}." if en else f"nous remboursons {basis}.")


def _en_exception_refund(c: ExceptionRefund, w: Words) -> str:
    since = (
        "of being told of the new terms"
        if c.reason == RequestKind.TERMS_DECLINED
        else "of the charge"
    )
    orders = c.order_numbers_required
    return _spaced(
        _exception_rule(c, w),
        f"Ask within {w.n(c.within_days, 'day')} {since}." if c.within_days else "",
        f"This applies once the problem has lasted {w.n(c.after_days, 'day')}."
        if c.after_days
        else "",
        "Include supporting documents with your request." if c.documents_required else "",
        "Give the order number." if orders == 1 else "",
        f"Give the {orders} order numbers concerned." if orders > 1 else "",
        f"The refund goes {_destination(w, c.destination)}." if c.destination else "",
    )


def _fr_exception_refund(c: ExceptionRefund, w: Words) -> str:
    since = (
        "suivant la notification des nouvelles conditions"
        if c.reason == RequestKind.TERMS_DECLINED
        else "suivant le paiement"
    )
    orders = c.order_numbers_required
    return _spaced(
        _exception_rule(c, w),
        f"La demande doit être faite dans les {w.n(c.within_days, 'day')} {since}."
        if c.within_days
        else "",
        f"Cela s'applique lorsque le problème dure depuis {w.n(c.after_days, 'day')}."
        if c.after_days
        else "",
        "Joignez des justificatifs à votre demande." if c.documents_required else "",
        "Indiquez le numéro de commande." if orders == 1 else "",
        f"Indiquez les {orders} numéros de commande concernés." if orders > 1 else "",
        f"Le remboursement est versé {_destination(w, c.destination)}." if c.destination else "",
    )


def _en_request_requirements(c: RequestRequirements, w: Words) -> str:
    needs = [
        f"be made within {w.n(c.window_days, 'day')} of the charge" if c.window_days else "",
        "state a reason" if c.reason_required else "",
        "give the order number" if c.order_number_required else "",
        "ask for the refund to the payment method that paid" if c.same_payment_method else "",
    ]
    needs = [n for n in needs if n]
    kinds = w.any_of(w.pick(_REQUEST_KIND["en"], k) for k in c.kinds)
    return _spaced(
        f"A refund request must {w.all_of(needs)}." if needs else "",
        f"This applies to requests about {kinds}." if kinds else "",
    ) or ("A refund request needs nothing in particular.")


def _fr_request_requirements(c: RequestRequirements, w: Words) -> str:
    needs = [
        f"être faite dans les {w.n(c.window_days, 'day')} suivant le paiement"
        if c.window_days
        else "",
        "indiquer un motif" if c.reason_required else "",
        "donner le numéro de commande" if c.order_number_required else "",
        "demander le remboursement sur le moyen de paiement qui a servi au paiement"
        if c.same_payment_method
        else "",
    ]
    needs = [n for n in needs if n]
    kinds = w.any_of(w.pick(_REQUEST_KIND["fr"], k) for k in c.kinds)
    return _spaced(
        f"Une demande de remboursement doit {w.all_of(needs)}." if needs else "",
        f"Cela vaut pour les demandes portant sur {kinds}." if kinds else "",
    ) or ("Une demande de remboursement n'exige rien de particulier.")


def _en_decline_ground(c: DeclineGround, w: Words) -> str:
    grounds = {
        "no_reason": "if it gives no reason",
        "on_go_funds": "if it is for “on the go” plan funds",
        "different_payment_method": "if it asks for the refund to a payment method other "
        "than the one that paid",
        "window_expired": "if it comes after its time limit, even if the service was not used",
        "violation": "if the account has broken the law or these terms",
    }
    return f"A refund request is declined {w.pick(grounds, c.ground)}."


def _fr_decline_ground(c: DeclineGround, w: Words) -> str:
    grounds = {
        "no_reason": "si elle n'indique aucun motif",
        "on_go_funds": "si elle porte sur des fonds d'un forfait « on go »",
        "different_payment_method": "si elle demande le remboursement sur un autre moyen de "
        "paiement que celui qui a servi au paiement",
        "window_expired": "si elle arrive après son délai, même si le service n'a pas été utilisé",
        "violation": "si le compte a enfreint la loi ou ces conditions",
    }
    return f"Une demande de remboursement est refusée {w.pick(grounds, c.ground)}."


def _en_refund_destination(c: RefundDestination, w: Words) -> str:
    return _spaced(
        "Refunds go only to the payment method that made the original payment."
        if c.same_method_only
        else f"Refunds go {_destination(w, c.default)}.",
        "Where anti-fraud or anti-money-laundering rules require it, a refund goes back to "
        "your original payment method instead."
        if c.aml_exception
        else "",
    )


def _fr_refund_destination(c: RefundDestination, w: Words) -> str:
    return _spaced(
        "Les remboursements sont versés uniquement sur le moyen de paiement qui a servi au "
        "paiement initial."
        if c.same_method_only
        else f"Les remboursements sont versés {_destination(w, c.default)}.",
        "Lorsque les règles anti-fraude ou anti-blanchiment l'exigent, un remboursement est "
        "versé sur votre moyen de paiement d'origine."
        if c.aml_exception
        else "",
    )


def _en_deadlines(c: Deadlines, w: Words) -> str:
    return _spaced(
        f"We review a refund request within {w.n(c.review_business_days, 'business_day')} "
        "of receiving it."
        if c.review_business_days
        else "",
        "An approved refund is processed within "
        f"{w.n(c.processing_business_days, 'business_day')} of its approval."
        if c.processing_business_days
        else "",
    ) or ("No review or processing deadline is set.")


def _fr_deadlines(c: Deadlines, w: Words) -> str:
    return _spaced(
        "Nous examinons une demande de remboursement dans un délai de "
        f"{w.n(c.review_business_days, 'business_day')} à compter de sa réception."
        if c.review_business_days
        else "",
        "Un remboursement accepté est traité dans un délai de "
        f"{w.n(c.processing_business_days, 'business_day')} à compter de son acceptation."
        if c.processing_business_days
        else "",
    ) or ("Aucun délai d'examen ni de traitement n'est fixé.")


def _en_appeals(c: Appeals, w: Words) -> str:
    if c.allowed:
        return "You can appeal our decision on a refund request."
    return "Our decision on a refund request is final: it cannot be appealed."


def _fr_appeals(c: Appeals, w: Words) -> str:
    if c.allowed:
        return "Vous pouvez contester notre décision sur une demande de remboursement."
    return (
        "Notre décision sur une demande de remboursement est définitive : elle ne peut pas "
        "faire l'objet d'un recours."
    )


def _en_terms_acceptance(c: TermsAcceptance, w: Words) -> str:
    if c.withdrawal_waived_at_payment:
        return "By paying, you accept these terms and expressly waive your right of withdrawal."
    return "By paying, you accept these terms."


def _fr_terms_acceptance(c: TermsAcceptance, w: Words) -> str:
    if c.withdrawal_waived_at_payment:
        return (
            "En payant, vous acceptez ces conditions et renoncez expressément à votre droit "
            "de rétractation."
        )
    return "En payant, vous acceptez ces conditions."


# -- fees, failed payments, outages, credits, disputes ---------------------------------------
def _en_fees(c: Fees, w: Words) -> str:
    return _spaced(
        "Processing and bank fees may be deducted from a refund." if c.processing_costs else "",
        f"A flat fee of up to {w.percent(c.flat_fee_max_percent)} of the refund may be deducted."
        if c.flat_fee_max_percent is not None
        else "",
        "A refund of a payment made in another currency is converted at the exchange rate of "
        "the refund day; you bear any difference."
        if c.fx_risk_on_customer
        else "",
    ) or ("No fees are deducted from refunds.")


def _fr_fees(c: Fees, w: Words) -> str:
    return _spaced(
        "Des frais de traitement ou bancaires peuvent être déduits d'un remboursement."
        if c.processing_costs
        else "",
        f"Des frais forfaitaires d'au plus {w.percent(c.flat_fee_max_percent)} du "
        "remboursement peuvent être déduits."
        if c.flat_fee_max_percent is not None
        else "",
        "Le remboursement d'un paiement fait dans une autre devise est converti au taux de "
        "change du jour du remboursement ; l'écart éventuel est à votre charge."
        if c.fx_risk_on_customer
        else "",
    ) or ("Aucuns frais ne sont déduits des remboursements.")


def _en_dunning(c: Dunning, w: Words) -> str:
    offsets = c.retry_offsets_days
    times = "once" if len(offsets) == 1 else w.n(len(offsets), "time")
    days = "day" if offsets == [1] else "days"
    return _spaced(
        f"If a payment fails, we try it again {times}: "
        f"{w.all_of(w.number(d) for d in offsets)} {days} after the first failure."
        if offsets
        else "If a payment fails, we do not try it again automatically.",
        "If the payment still fails, your subscription is suspended."
        if c.suspend_after_last
        else "",
        "A successful payment reactivates it at once." if c.reactivate_on_payment else "",
        "We email you about each failed payment." if c.notify else "",
    )


def _fr_dunning(c: Dunning, w: Words) -> str:
    offsets = c.retry_offsets_days
    days = "jour" if offsets == [1] else "jours"
    return _spaced(
        f"Si un paiement échoue, nous le retentons {w.n(len(offsets), 'time')} : "
        f"{w.all_of(w.number(d) for d in offsets)} {days} après le premier échec."
        if offsets
        else "Si un paiement échoue, nous ne le retentons pas automatiquement.",
        "Si le paiement échoue toujours, votre abonnement est suspendu."
        if c.suspend_after_last
        else "",
        "Un paiement réussi le réactive immédiatement." if c.reactivate_on_payment else "",
        "Nous vous prévenons par e-mail de chaque échec de paiement." if c.notify else "",
    )


def _en_outage_compensation(c: OutageCompensation, w: Words) -> str:
    causes = {
        "internal": "a problem within our control",
        "third_party": "a third-party service",
        "force_majeure": "force majeure",
    }
    longer = "more than" if c.strictly_longer else "at least"
    duration = f" for {longer} {w.n(c.min_duration_hours, 'hour')}" if c.min_duration_hours else ""
    lead = (
        f"If the service is interrupted{duration} because of "
        f"{w.any_of(w.pick(causes, x) for x in c.causes)}, "
    )
    if c.decision == Outcome.DECLINED:
        rule = f"{lead}no compensation is given."
    elif c.destination == Destination.WALLET:
        rule = f"{lead}we credit your account balance with {_basis(w, 'duration')}."
    else:
        rule = f"{lead}we refund {_basis(w, 'duration')}, {_destination(w, c.destination)}."
    alternatives = {
        "extend_period": "extend your current period",
        "message_credits": "give you message credits",
    }
    other = w.any_of(w.pick(alternatives, a) for a in c.alternatives)
    return _spaced(
        rule,
        "Our team reviews each case." if c.decision == Outcome.NEEDS_REVIEW else "",
        f"Report the interruption within {w.n(c.report_within_hours, 'hour')}."
        if c.report_within_hours
        else "",
        f"Instead, we may {other}." if other else "",
    )


def _fr_outage_compensation(c: OutageCompensation, w: Words) -> str:
    causes = {
        "internal": "d'un problème qui relève de notre responsabilité",
        "third_party": "d'un service tiers",
        "force_majeure": "d'un cas de force majeure",
    }
    longer = "plus de" if c.strictly_longer else "au moins"
    duration = (
        f" pendant {longer} {w.n(c.min_duration_hours, 'hour')}" if c.min_duration_hours else ""
    )
    lead = (
        f"Si le service est interrompu{duration} à cause "
        f"{w.any_of(w.pick(causes, x) for x in c.causes)}, "
    )
    if c.decision == Outcome.DECLINED:
        rule = f"{lead}aucune indemnisation n'est accordée."
    elif c.destination == Destination.WALLET:
        rule = (
            f"{lead}nous créditons le solde de votre compte du prix de la durée de "
            "l'interruption, au prorata."
        )
    else:
        rule = f"{lead}nous remboursons {_basis(w, 'duration')}, {_destination(w, c.destination)}."
    alternatives = {
        "extend_period": "prolonger votre période en cours",
        "message_credits": "vous accorder des crédits de messages",
    }
    other = w.any_of(w.pick(alternatives, a) for a in c.alternatives)
    return _spaced(
        rule,
        "Notre équipe examine chaque cas." if c.decision == Outcome.NEEDS_REVIEW else "",
        f"Signalez l'interruption dans les {w.n(c.report_within_hours, 'hour')}."
        if c.report_within_hours
        else "",
        f"À la place, nous pouvons {other}." if other else "",
    )


_FAILURE_ACTIONS = {
    "en": {
        "return": "If a message fails because of {}, its credits are returned to you.",
        "review": "If it fails because of {}, we decide case by case.",
        "none": "If it fails because of {}, no credits are returned.",
    },
    "fr": {
        "return": "Si un message n'est pas délivré à cause {}, ses crédits vous sont restitués.",
        "review": "S'il n'est pas délivré à cause {}, nous décidons au cas par cas.",
        "none": "S'il n'est pas délivré à cause {}, aucun crédit n'est restitué.",
    },
}


def _credits_failures(c: PrepaidCredits, w: Words, causes: dict[str, str]) -> list[str]:
    """One sentence per action (return, review, none), naming the causes that lead to it."""
    by_action: dict[str, list[str]] = {}
    for failure, action in c.failed_delivery.items():
        by_action.setdefault(action, []).append(w.pick(causes, failure))
    templates = _FAILURE_ACTIONS[w.lang]
    return [
        templates[action].format(w.any_of(by_action[action]))
        for action in ("return", "review", "none")
        if action in by_action
    ]


def _en_prepaid_credits(c: PrepaidCredits, w: Words) -> str:
    causes = {
        "platform": "our platform",
        "third_party": "a third-party service",
        "invalid_recipient": "an invalid recipient",
        "blocked": "a blocked number",
        "device": "your device",
    }
    forfeit = {
        "closure": "closing your account",
        "termination": "termination for a breach of the terms",
        "cancellation": "cancellation",
        "suspension": "suspension",
    }
    return _spaced(
        f"Prepaid message credits are valid for {w.n(c.validity_days, 'day')} from purchase."
        if c.validity_days
        else "Prepaid message credits do not expire.",
        f"They {'can' if c.transferable else 'cannot'} be transferred between accounts and "
        f"{'are' if c.refundable else 'are not'} refundable.",
        f"Expired credits {'can' if c.extendable else 'cannot'} be extended."
        if c.validity_days
        else "",
        *_credits_failures(c, w, causes),
        f"Unused credits are forfeited on {w.any_of(w.pick(forfeit, f) for f in c.forfeit_on)}."
        if c.forfeit_on
        else "",
    )


def _fr_prepaid_credits(c: PrepaidCredits, w: Words) -> str:
    causes = {
        "platform": "de notre plateforme",
        "third_party": "d'un service tiers",
        "invalid_recipient": "d'un destinataire invalide",
        "blocked": "d'un numéro bloqué",
        "device": "de votre appareil",
    }
    forfeit = {
        "closure": "fermeture du compte",
        "termination": "résiliation pour manquement aux conditions",
        "cancellation": "annulation",
        "suspension": "suspension",
    }
    return _spaced(
        f"Les crédits de messages prépayés sont valables {w.n(c.validity_days, 'day')} à "
        "compter de l'achat."
        if c.validity_days
        else "Les crédits de messages prépayés n'expirent pas.",
        f"Ils {'sont' if c.transferable else 'ne sont pas'} transférables entre comptes et "
        f"{'sont' if c.refundable else 'ne sont pas'} remboursables.",
        f"Les crédits expirés {'peuvent' if c.extendable else 'ne peuvent pas'} être prolongés."
        if c.validity_days
        else "",
        *_credits_failures(c, w, causes),
        "Les crédits non utilisés sont perdus en cas de "
        f"{w.any_of(w.pick(forfeit, f) for f in c.forfeit_on)}."
        if c.forfeit_on
        else "",
    )


def _en_promotions(c: Promotions, w: Words) -> str:
    return (
        f"Promotional discounts and credits {'are' if c.refundable else 'are not'} refundable "
        f"and {'can' if c.combinable else 'cannot'} be combined with other offers."
    )


def _fr_promotions(c: Promotions, w: Words) -> str:
    return (
        f"Les remises et crédits promotionnels {'sont' if c.refundable else 'ne sont pas'} "
        f"remboursables et {'peuvent' if c.combinable else 'ne peuvent pas'} être cumulés avec "
        "d'autres offres."
    )


def _en_disputes(c: Disputes, w: Words) -> str:
    return _spaced(
        "Please contact us before opening a chargeback with your bank.",
        "If you open one without contacting us first, your account is suspended at once."
        if c.suspend_if_support_not_contacted
        else "",
        "We may terminate your account if a chargeback is unjustified."
        if c.terminate_if_unjustified == "review"
        else "",
        f"A chargeback fee of {w.money(c.fee)} applies." if c.fee is not None else "",
    )


def _fr_disputes(c: Disputes, w: Words) -> str:
    return _spaced(
        "Contactez-nous avant d'ouvrir une contestation de paiement auprès de votre banque.",
        "Si vous en ouvrez une sans nous avoir contactés, votre compte est suspendu immédiatement."
        if c.suspend_if_support_not_contacted
        else "",
        "Nous pouvons résilier votre compte si la contestation est injustifiée."
        if c.terminate_if_unjustified == "review"
        else "",
        f"Des frais de contestation de {w.money(c.fee)} s'appliquent." if c.fee is not None else "",
    )


# -- changes to these terms, other ----------------------------------------------------------
def _en_terms_change(c: TermsChange, w: Words) -> str:
    return _spaced(
        "We may change these terms.",
        "We tell you of material changes by email." if c.notify_material_changes else "",
        "Using the service after a change means you accept the new terms."
        if c.continued_use_is_acceptance
        else "",
    )


def _fr_terms_change(c: TermsChange, w: Words) -> str:
    return _spaced(
        "Nous pouvons modifier ces conditions.",
        "Nous vous informons par e-mail des changements importants."
        if c.notify_material_changes
        else "",
        "Continuer à utiliser le service après un changement vaut acceptation des nouvelles "
        "conditions."
        if c.continued_use_is_acceptance
        else "",
    )


def _en_violations(c: Violations, w: Words) -> str:
    action = "terminate" if c.action == "terminate" else "suspend"
    credits = ", and your unused credits are forfeited" if c.forfeit_credits else ""
    return f"If you breach these terms, we may {action} your account, with no refund{credits}."


def _fr_violations(c: Violations, w: Words) -> str:
    action = "résilier" if c.action == "terminate" else "suspendre"
    credits = ", et vos crédits non utilisés sont perdus" if c.forfeit_credits else ""
    return (
        f"En cas de manquement à ces conditions, nous pouvons {action} votre compte, sans "
        f"remboursement{credits}."
    )


_RETENTION_EVENTS = {
    "en": {
        "after_cancellation_days": "a cancellation",
        "after_suspension_days": "a suspension",
        "after_termination_days": "a termination for a breach of the terms",
        "after_closure_days": "you close your account",
    },
    "fr": {
        "after_cancellation_days": "une annulation",
        "after_suspension_days": "une suspension",
        "after_termination_days": "une résiliation pour manquement aux conditions",
        "after_closure_days": "la fermeture de votre compte",
    },
}


def _retention(c: DataRetention, lang: str) -> tuple[list[tuple[int, str]], list[str]]:
    """(days, event) for data kept, and the events after which data is deleted at once."""
    kept: list[tuple[int, str]] = []
    deleted: list[str] = []
    for name, event in _RETENTION_EVENTS[lang].items():
        days = getattr(c, name)
        if days == 0:
            deleted.append(event)
        elif days is not None:
            kept.append((days, event))
    return kept, deleted


def _en_data_retention(c: DataRetention, w: Words) -> str:
    kept, deleted = _retention(c, "en")
    periods = w.all_of(f"for {w.n(days, 'day')} after {event}" for days, event in kept)
    return _spaced(
        f"After the service ends, your data is kept {periods}, then deleted." if kept else "",
        f"It is deleted at once after {w.any_of(deleted)}." if deleted and kept else "",
        f"Your data is deleted at once after {w.any_of(deleted)}." if deleted and not kept else "",
        "You can export your data at any time."
        if c.export_anytime
        else "Exporting your data at any time is not guaranteed.",
    )


def _fr_data_retention(c: DataRetention, w: Words) -> str:
    kept, deleted = _retention(c, "fr")
    periods = w.all_of(f"pendant {w.n(days, 'day')} après {event}" for days, event in kept)
    return _spaced(
        f"Après la fin du service, vos données sont conservées {periods}, puis supprimées."
        if kept
        else "",
        f"Elles sont supprimées immédiatement après {w.any_of(deleted)}."
        if deleted and kept
        else "",
        f"Vos données sont supprimées immédiatement après {w.any_of(deleted)}."
        if deleted and not kept
        else "",
        "Vous pouvez exporter vos données à tout moment."
        if c.export_anytime
        else "L'export de vos données à tout moment n'est pas garanti.",
    )


WORDING: dict[str, dict[str, Template]] = {
    "en": {
        "billing_terms": _en_billing_terms,
        "money_back_guarantee": _en_money_back_guarantee,
        "cancellation_timing": _en_cancellation_timing,
        "cancellation_refund": _en_cancellation_refund,
        "non_refundable": _en_non_refundable,
        "exception_refund": _en_exception_refund,
        "outage_compensation": _en_outage_compensation,
        "cooling_off": _en_cooling_off,
        "request_requirements": _en_request_requirements,
        "decline_ground": _en_decline_ground,
        "refund_destination": _en_refund_destination,
        "fees": _en_fees,
        "plan_change": _en_plan_change,
        "usage_tiers": _en_usage_tiers,
        "prepaid_credits": _en_prepaid_credits,
        "dunning": _en_dunning,
        "disputes": _en_disputes,
        "violations": _en_violations,
        "trials": _en_trials,
        "promotions": _en_promotions,
        "data_retention": _en_data_retention,
        "deadlines": _en_deadlines,
        "appeals": _en_appeals,
        "terms_acceptance": _en_terms_acceptance,
        "terms_change": _en_terms_change,
        "account_closure": _en_account_closure,
        "activation": _en_activation,
    },
    "fr": {
        "billing_terms": _fr_billing_terms,
        "money_back_guarantee": _fr_money_back_guarantee,
        "cancellation_timing": _fr_cancellation_timing,
        "cancellation_refund": _fr_cancellation_refund,
        "non_refundable": _fr_non_refundable,
        "exception_refund": _fr_exception_refund,
        "outage_compensation": _fr_outage_compensation,
        "cooling_off": _fr_cooling_off,
        "request_requirements": _fr_request_requirements,
        "decline_ground": _fr_decline_ground,
        "refund_destination": _fr_refund_destination,
        "fees": _fr_fees,
        "plan_change": _fr_plan_change,
        "usage_tiers": _fr_usage_tiers,
        "prepaid_credits": _fr_prepaid_credits,
        "dunning": _fr_dunning,
        "disputes": _fr_disputes,
        "violations": _fr_violations,
        "trials": _fr_trials,
        "promotions": _fr_promotions,
        "data_retention": _fr_data_retention,
        "deadlines": _fr_deadlines,
        "appeals": _fr_appeals,
        "terms_acceptance": _fr_terms_acceptance,
        "terms_change": _fr_terms_change,
        "account_closure": _fr_account_closure,
        "activation": _fr_activation,
    },
}


def _value(value: Any, w: Words) -> str:
    if isinstance(value, bool):
        return {"en": ("yes", "no"), "fr": ("oui", "non")}[w.lang][0 if value else 1]
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Decimal):
        return w.number(value)
    if isinstance(value, list | tuple):
        return ", ".join(_value(v, w) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{_value(k, w)}: {_value(v, w)}" for k, v in value.items()) or "—"
    return str(value)


def fallback(clause: ClauseBase, w: Words) -> str:
    """A clause kind without a template: its kind and every parameter that is set."""
    kind = str(getattr(clause, "kind", type(clause).__name__)).replace("_", " ")
    fields = [
        f"{name.replace('_', ' ')}: {_value(value, w)}"
        for name, value in clause
        if name not in _COMMON and value is not None
    ]
    lead = {"en": "This rule", "fr": "Cette règle"}[w.lang]
    sets = {"en": "sets:", "fr": "fixe :"}[w.lang]
    if not fields:
        return f"{lead} ({kind})."
    return f"{lead} ({kind}) {sets} {'; '.join(fields)}."


def clause_statement(clause: ClauseBase, w: Words) -> str:
    """The clause stated plainly in ``w.lang``: its kind's template, else ``fallback``."""
    kind = str(getattr(clause, "kind", ""))
    template = WORDING.get(w.lang, {}).get(kind)
    return template(clause, w) if template is not None else fallback(clause, w)
