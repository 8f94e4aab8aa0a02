"""The wide shapes of the imitated Service Layer entities, typed as SAP's ``$metadata`` types them.

A real Service Layer answers with hundreds of properties per record, most of them null or
``"tNO"``. Each list below names the properties in the order the server emits them; a suffix
gives the default of a property the sandbox does not model: ``:N`` ``"tNO"``, ``:Y`` ``"tYES"``
(both ``BoYesNoEnum``), ``:0`` ``0.0`` (``Edm.Double``), ``:i`` ``0`` (``Edm.Int32``), ``:L`` an
empty collection, any other suffix a member of the property's enumeration (``Printed:psNo``);
no suffix is ``null``. Modelled properties (keys, dates, amounts, references) are filled from
each record's compact core when the record is serialized, so only the properties a reply asks
for are ever built.

Every property has a type (:attr:`Template.types`): the suffix implies one, a name ending in
``Date`` (or ``ValidFrom`` and the like) is a day, one ending in ``Time`` a time of day, and the
``types`` given to :func:`parse` name the rest (integers, doubles and enumerations whose default
is null); anything else is ``Edm.String``. The types and the enumeration members below follow
SAP's ``SAPB1`` ``$metadata`` (Service Layer 10.0). Writes are checked against them by
:func:`clean`, which refuses what SAP refuses: a value outside an enumeration, a string where a
number is due, a day that does not exist.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any

STRING = "Edm.String"
INT = "Edm.Int32"
DOUBLE = "Edm.Double"
DATE = "Edm.Date"  # v1 sends "2024-05-01" (Edm.DateTime), v2 "2024-05-01T00:00:00Z" (Edm.DateTimeOffset)
TIME = "Edm.TimeOfDay"  # "13:14:45"
COLLECTION = "Collection"
COMPLEX = "Complex"

#: Members of every enumeration the imitated entities use (SAPB1 $metadata).
ENUMS: dict[str, tuple[str, ...]] = {
    name: tuple(members.split())
    for name, members in {
        "AssetStatusEnum": "New Active Inactive",
        "BoApprovalRequestDecisionEnum": "ardPending ardApproved ardNotApproved",
        "BoApprovalRequestStatusEnum": (
            "arsPending arsApproved arsNotApproved arsGenerated arsGeneratedByAuthorizer arsCancelled"
        ),
        "BoAccountTypes": "at_Revenues at_Expenses at_Other",
        "BoAddressType": "bo_ShipTo bo_BillTo",
        "BoBoeStatus": "boes_Created boes_Sent boes_Deposited boes_Paid boes_Cancelled boes_Closed boes_Failed",
        "BoCardCompanyTypes": "cCompany cPrivate cGovernment cEmployee",
        "BoCardTypes": "cCustomer cSupplier cLid",
        "BoDocLineType": "dlt_Regular dlt_Alternative",
        "BoDocSummaryTypes": "dNoSummary dByItems dByDocuments",
        "BoDocWhsUpdateTypes": "dwh_No dwh_OrdersFromVendors dwh_CustomerOrders dwh_Consignment dwh_Stock",
        "BoDocumentSubType": (
            "bod_None bod_InvoiceExempt bod_DebitMemo bod_Bill bod_ExemptBill bod_PurchaseDebitMemo "
            "bod_ExportInvoice bod_GSTTaxInvoice bod_GSTDebitMemo bod_RefundVoucher "
        ),
        "BoDocumentTypes": "dDocument_Items dDocument_Service",
        "BoFatherCardTypes": "cPayments_sum cDelivery_sum",
        "BoGLMethods": "glm_WH glm_ItemClass glm_ItemLevel",
        "BoGSTRegnTypeEnum": (
            "invalid gstRegularTDSISD gstCasualTaxablePerson gstCompositionLevy gstGoverDepartPSU "
            "gstNonResidentTaxablePerson gstUNAgencyEmbassy "
        ),
        "BoInterimDocTypes": "boidt_None boidt_ExchangeRate boidt_CashDiscount",
        "BoInventorySystem": "bis_MovingAverage bis_Standard bis_FIFO bis_SNB",
        "BoIssueMethod": "im_Backflush im_Manual",
        "BoItemTreeTypes": "iNotATree iAssemblyTree iSalesTree iProductionTree iTemplateTree iIngredient",
        "BoMRPComponentWarehouse": "bomcw_BOM bomcw_Parent",
        "BoManageMethod": "bomm_OnEveryTransaction bomm_OnReleaseOnly",
        "BoObjectTypes": (
            "oChartOfAccounts oBusinessPartners oBanks oItems oVatGroups oPriceLists oSpecialPrices "
            "oItemProperties oBusinessPartnerGroups oUsers oInvoices oCreditNotes oDeliveryNotes oReturns "
            "oOrders oPurchaseInvoices oPurchaseCreditNotes oPurchaseDeliveryNotes oPurchaseReturns "
            "oPurchaseOrders oQuotations oIncomingPayments oJournalVouchers oJournalEntries oStockTakings "
            "oContacts oCreditCards oCurrencyCodes oPaymentTermsTypes oBankPages oManufacturers "
            "oVendorPayments oLandedCostsCodes oShippingTypes oLengthMeasures oWeightMeasures oItemGroups "
            "oSalesPersons oCustomsGroups oChecksforPayment oInventoryGenEntry oInventoryGenExit oWarehouses "
            "oCommissionGroups oProductTrees oStockTransfer oWorkOrders oCreditPaymentMethods "
            "oCreditCardPayments oAlternateCatNum oBudget oBudgetDistribution oMessages oBudgetScenarios "
            "oUserDefaultGroups oSalesOpportunities oSalesStages oActivityTypes oActivityLocations oDrafts "
            "oDeductionTaxHierarchies oDeductionTaxGroups oAdditionalExpenses oSalesTaxAuthorities "
            "oSalesTaxAuthoritiesTypes oSalesTaxCodes oQueryCategories oFactoringIndicators oPaymentsDrafts "
            "oAccountSegmentations oAccountSegmentationCategories oWarehouseLocations oForms1099 "
            "oInventoryCycles oWizardPaymentMethods oBPPriorities oDunningLetters oUserFields oUserTables "
            "oPickLists oPaymentRunExport oUserQueries oMaterialRevaluation oCorrectionPurchaseInvoice "
            "oCorrectionPurchaseInvoiceReversal oCorrectionInvoice oCorrectionInvoiceReversal "
            "oContractTemplates oEmployeesInfo oCustomerEquipmentCards oWithholdingTaxCodes "
            "oBillOfExchangeTransactions oKnowledgeBaseSolutions oServiceContracts oServiceCalls oUserKeys "
            "oQueue oSalesForecast oTerritories oIndustries oProductionOrders oDownPayments "
            "oPurchaseDownPayments oPackagesTypes oUserObjectsMD oTeams oRelationships oUserPermissionTree "
            "oActivityStatus oChooseFromList oFormattedSearches oAttachments2 oUserLanguages "
            "oMultiLanguageTranslations oDynamicSystemStrings oHouseBankAccounts oBusinessPlaces oLocalEra "
            "oNotaFiscalCFOP oNotaFiscalCST oNotaFiscalUsage oClosingDateProcedure oBPFiscalRegistryID "
            "oSalesTaxInvoice oPurchaseTaxInvoice oPurchaseQuotations oStockTransferDraft "
            "oInventoryTransferRequest oPurchaseRequest oReturnRequest oGoodsReturnRequest oSelfInvoice "
            "oSelfCreditMemo "
        ),
        "BoPayTermDueTypes": "pdt_MonthEnd pdt_HalfMonth pdt_MonthStart pdt_None",
        "BoPaymentPriorities": "bopp_Priority_1 bopp_Priority_2 bopp_Priority_3 bopp_Priority_4 bopp_Priority_5 bopp_Priority_6",
        "BoPlanningSystem": "bop_MRP bop_None",
        "BoProcurementMethod": "bom_Buy bom_Make",
        "BoRcptInvTypes": (
            "it_AllTransactions it_OpeningBalance it_ClosingBalance it_Invoice it_CredItnote it_TaxInvoice "
            "it_Return it_PurchaseInvoice it_PurchaseCreditNote it_PurchaseDeliveryNote it_PurchaseReturn "
            "it_Receipt it_Deposit it_JournalEntry it_PaymentAdvice it_ChequesForPayment "
            "it_StockReconciliations it_GeneralReceiptToStock it_GeneralReleaseFromStock "
            "it_TransferBetweenWarehouses it_WorkInstructions it_DeferredDeposit it_CorrectionInvoice "
            "it_APCorrectionInvoice it_ARCorrectionInvoice it_DownPayment it_PurchaseDownPayment "
        ),
        "BoRcptTypes": "rCustomer rAccount rSupplier",
        "BoSoStatus": "so_Open so_Closed",
        "BoStatus": "bost_Open bost_Close bost_Paid bost_Delivered",
        "BoTaxPostAccEnum": "tpa_Default tpa_SalesTaxAccount tpa_PurchaseTaxAccount",
        "BoTaxTypes": "tt_Yes tt_No tt_UseTax tt_OffsetTax",
        "BoVatStatus": "vExempted vLiable vEC",
        "BoYesNoEnum": "tNO tYES",
        "CancelStatusEnum": "csYes csNo csCancellation",
        "ClosingOptionEnum": "coByCurrentSystemDate coByOriginalDocumentDate coBySpecifiedDate",
        "CommissionTradeTypeEnum": "ct_Empty ct_SalesAgent ct_PurchaseAgent ct_Consignor",
        "DocumentAuthorizationStatusEnum": "dasWithout dasPending dasApproved dasRejected dasGenerated dasGeneratedbyAuthorizer dasCancelled",
        "DocumentDeliveryTypeEnum": "ddtNoneSeleted ddtCreateOnlineDocument ddtPostToAribaNetwork",
        "DownPaymentTypeEnum": "dptRequest dptInvoice",
        "ECDPostingTypeEnum": "ecdNormal ecdStatement",
        "EDocGenerationTypeEnum": "edocGenerate edocGenerateLater edocNotRelevant",
        "EDocStatusEnum": "edoc_New edoc_Pending edoc_Sent edoc_Error edoc_Ok",
        "ElecCommStatusEnum": "ecsApproved ecsPendingApproval ecsRejected",
        "ExemptionMaxAmountValidationTypeEnum": "emaIndividual emaAccumulated",
        "FolioLetterEnum": "fLetterA fLetterB fLetterC fLetterE fLetterM fLetterR fLetterT fLetterX fLetterEMPTY",
        "GSTTaxCategoryEnum": "gtc_Regular gtc_NilRated gtc_Exempt",
        "IssuePrimarilyByEnum": "ipbSerialAndBatchNumbers ipbBinLocations",
        "ItemClassEnum": "itcService itcMaterial",
        "ItemTypeEnum": "itItems itLabor itTravel itFixedAssets",
        "OperationCodeTypeEnum": (
            "octSummaryInvoicesEntry octSummaryReceiptsEntry octInvoicewithSeveralVATRates "
            "octCorrectionInvoice octDueVATPendingInvoiceIssuance "
            "octExpensesIncurredbyTravelAgentforCustomers octSpecialRegulationforVATGroup "
            "octSpecialRegulationforGoldInvestment octReverseChargeProcedure octUnsummarizedReceipts "
            "octIdentificationofErrorTransactions "
            "octTransactionswithEntrepreneursIssuingReceiptsforAgriculturalCompensation "
            "octServiceInvoicingbyTravelAgenciesonBehalfofThirdParties octBusinessOfficeRental octSubsidies "
            "octIncomingPaymentsforIndustrialandIntellectualPropertyRights octInsuranceTransactions "
            "octPurchasesfromTravelAgencies "
            "octTransactionsSubjecttoProductionServiceandImportTaxesinCeutaandMelilla "
        ),
        "PaymentsAuthorizationStatusEnum": "pasWithout pasPending pasApproved pasRejected pasGenerated pasGeneratedbyAuthorizer pasCancelled",
        "PriceModeDocumentEnum": "pmdNet pmdGross pmdNetAndGross",
        "PrintStatusEnum": "psNo psYes psAmended",
        "ResidenceNumberTypeEnum": (
            "rntSpanishFiscalID rntVATRegistrationNumber rntPassport rntFiscalIDIssuedbytheResidenceCountry "
            "rntCertificateofFiscalResidence rntOtherDocument "
        ),
        "SOIExcisableTypeEnum": "se_Excisable se_Exemption se_PaidToOther se_NotExcisable",
        "SpecialProductTypeEnum": "sptMT sptIO",
        "TransTypesEnum": (
            "ttAllTransactions ttOpeningBalance ttClosingBalance ttARInvoice ttARCredItnote ttDelivery "
            "ttReturn ttAPInvoice ttAPCreditNote ttPurchaseDeliveryNote ttPurchaseReturn ttReceipt ttDeposit "
            "ttJournalEntry ttVendorPayment ttChequesForPayment ttStockList ttGeneralReceiptToStock "
            "ttGeneralReleaseFromStock ttTransferBetweenWarehouses ttWorkInstructions ttLandedCosts "
            "ttDeferredDeposit ttCorrectionInvoice ttInventoryValuation ttAPCorrectionInvoice "
            "ttAPCorrectionInvoiceReversal ttARCorrectionInvoice ttARCorrectionInvoiceReversal "
            "ttBoETransaction ttProductionOrder ttDownPayment ttPurchaseDownPayment ttInternalReconciliation "
            "ttInventoryPosting ttInventoryOpeningBalance "
        ),
    }.items()
}

#: Enumerations that also take SAP's one-letter database codes on write ("names or letters in").
ENUM_LETTERS: dict[str, dict[str, str]] = {"BoCardTypes": {"C": "cCustomer", "S": "cSupplier", "L": "cLid"}}

_SUFFIX_DEFAULTS: dict[str, tuple[Any, str]] = {
    "N": ("tNO", "BoYesNoEnum"),
    "Y": ("tYES", "BoYesNoEnum"),
    "0": (0.0, DOUBLE),
    "i": (0, INT),
}
_DATE_NAMES = {"ValidFrom", "ValidTo", "FrozenFrom", "FrozenTo", "EffectiveFrom", "EffectiveTo"}


class Template(dict):
    """An ordered ``{property: default}`` of one ``$metadata`` type.

    :param name: the type's name in ``$metadata`` (``Document``, ``DocumentLine``...), used in
        error messages.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.types: dict[str, str] = {}

    def type_of(self, prop: str) -> str:
        """The type of a property (user fields not declared here are strings)."""
        return self.types.get(prop, STRING)

    def props_of(self, type_name: str) -> list[str]:
        """The properties of one type, in the order the server emits them."""
        return [p for p, t in self.types.items() if t == type_name]


def _implied_type(name: str) -> str:
    if name.endswith("Date") or name in _DATE_NAMES:
        return DATE
    if name.endswith("Time"):
        return TIME
    return STRING


def parse(name: str, spec: str, types: dict[str, str] | None = None) -> Template:
    """Turn a property list into an ordered, typed template.

    :param name: the ``$metadata`` type's name.
    :param spec: the properties in the server's order, with default suffixes.
    :param types: type name (``Edm.Int32``, an enumeration...) to the properties of that type
        whose type the suffix and the name do not already tell.
    :raises ValueError: for a default that is not of its property's type (caught at import).
    """
    declared = {prop: type_name for type_name, props in (types or {}).items() for prop in props.split()}
    out = Template(name)
    for token in spec.split():
        prop, _, suffix = token.partition(":")
        if suffix == "L":
            default, implied = [], COLLECTION
        elif suffix in _SUFFIX_DEFAULTS:
            default, implied = _SUFFIX_DEFAULTS[suffix]
        elif suffix:
            default, implied = suffix, declared.get(prop, STRING)
        else:
            default, implied = None, _implied_type(prop)
        kind = declared.pop(prop, implied)
        if default is not None and default != [] and type_problem(kind, default) is not None:
            raise ValueError(f"{name}.{prop}: default {default!r} is not a {kind}")
        out[prop] = default
        out.types[prop] = kind
    if declared:
        raise ValueError(f"{name}: types given for unknown properties {sorted(declared)}")
    return out


# ---------------------------------------------------------------------------------------------
# Checking written values


class TypeMismatch(ValueError):
    """A written value SAP would refuse for its property's type (answered 400 / -1000)."""


_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](.*))?$|^(\d{4})(\d{2})(\d{2})$")
_CLOCK = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,7})?)?$")
_ZONE = re.compile(r"(?:Z|[+-]\d{2}:\d{2})$")


def parse_day(text: str) -> str | None:
    """``2024-05-01``, ``20240501`` or ``2024-05-01T00:00:00Z`` as the ISO day, or None.

    The day must exist (no ``2024-02-30``) and a time part, which is ignored, must be a real
    time of day.
    """
    m = _DAY.match(text)
    if m is None:
        return None
    year, month, day_of_month, rest = m.group(1, 2, 3, 4) if m.group(1) else (*m.group(5, 6, 7), None)
    try:
        day = dt.date(int(year), int(month), int(day_of_month))
    except ValueError:
        return None
    if rest is not None and parse_clock(_ZONE.sub("", rest)) is None:
        return None
    return day.isoformat()


def parse_clock(text: str) -> str | None:
    """``13:14`` or ``13:14:45`` (fractions allowed) as ``HH:MM:SS``, or None."""
    m = _CLOCK.match(text)
    if m is None:
        return None
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return f"{hour:02d}:{minute:02d}:{second:02d}"


def type_problem(kind: str, value: Any) -> str | None:
    """Why ``value`` is not a ``kind`` (None when it is)."""
    if kind == STRING:
        return None if isinstance(value, str) else "an Edm.String"
    if kind == INT:
        ok = type(value) is int and -(2**31) <= value < 2**31
        return None if ok else "an Edm.Int32"
    if kind == DOUBLE:
        ok = type(value) in (int, float) and math.isfinite(value)
        return None if ok else "an Edm.Double"
    if kind == DATE:
        return None if isinstance(value, str) and parse_day(value) is not None else "a date"
    if kind == TIME:
        return None if isinstance(value, str) and parse_clock(value) is not None else "a time of day"
    if kind == COLLECTION:
        ok = isinstance(value, list) and all(isinstance(child, dict) for child in value)
        return None if ok else "a collection of objects"
    if kind == COMPLEX:
        return None if isinstance(value, dict) else "an object"
    members = ENUMS[kind]
    if isinstance(value, str) and (value in members or value in ENUM_LETTERS.get(kind, ())):
        return None
    return f"a {kind} ({', '.join(members) if len(members) <= 8 else 'see $metadata'})"


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 100 else text[:97] + "..."


def _normalized(kind: str, value: Any) -> Any:
    if kind == DATE:
        return parse_day(value)
    if kind == TIME:
        return parse_clock(value)
    letters = ENUM_LETTERS.get(kind)
    if letters and value in letters:
        return letters[value]
    return value


def clean(template: Template, payload: dict[str, Any], children: dict[str, Template]) -> dict[str, Any]:
    """Check a written record against its types, as SAP does before it writes anything.

    Returns a copy with values in the form the server keeps: days as ``YYYY-MM-DD``, times as
    ``HH:MM:SS``, enumeration letters as member names; child collections named in ``children``
    are checked and normalized the same way.

    :raises TypeMismatch: for an unknown property (``Property 'X' of 'Document' is invalid``)
        or a value of the wrong type.
    """
    if not isinstance(payload, dict):
        raise TypeMismatch("The request body must be a JSON object")
    out: dict[str, Any] = {}
    for prop, value in payload.items():
        if prop not in template:
            raise TypeMismatch(f"Property '{prop}' of '{template.name}' is invalid")
        kind = template.type_of(prop)
        if value is None:
            out[prop] = None
            continue
        problem = type_problem(kind, value)
        if problem is not None:
            raise TypeMismatch(
                f"Value '{_shown(value)}' of property '{prop}' of '{template.name}' is invalid: {problem} is expected"
            )
        child = children.get(prop) if kind == COLLECTION else None
        if child is not None:
            out[prop] = [clean(child, item, children) for item in value]
        else:
            out[prop] = _normalized(kind, value)
    return out


DOCUMENT_USER_FIELDS = (
    "U_ExternalId U_SourceSystem U_SyncStatus U_Region U_Channel U_ApprovedBy U_ContractNo U_Route "
    "U_PortalRef U_Priority U_WMSStatus U_ShipVia U_CostNote U_PromoCode U_EDIRef U_Inspector U_DeliveryWindow"
)

DOCUMENT = parse(
    "Document",
    "DocEntry DocNum DocType HandWritten:N Printed:psNo DocDate DocDueDate CardCode CardName Address "
    "NumAtCard DocTotal:0 AttachmentEntry DocCurrency DocRate:0 Reference1 Reference2 Comments "
    "JournalMemo PaymentGroupCode:i DocTime SalesPersonCode:i TransportationCode:i Confirmed:Y "
    "ImportFileNum SummeryType ContactPersonCode ShowSCN:N Series:i TaxDate PartialSupply:Y "
    "DocObjectCode ShipToCode Indicator FederalTaxID DiscountPercent:0 PaymentReference CreationDate "
    "UpdateDate FinancialPeriod:i UserSign:i TransNum VatSum:0 VatSumSys:0 VatSumFc:0 NetProcedure:N "
    "DocTotalFc:0 DocTotalSys:0 PaidToDate:0 PaidToDateFC:0 PaidToDateSys:0 Form1099 Box1099 "
    "RevisionPo:N RequriedDate CancelDate BlockDunning:N "
    "Submitted:N Segment:i PickStatus:N Pick:N PaymentMethod PaymentBlock:N PaymentBlockEntry "
    "CentralBankIndicator MaximumCashDiscount:N Reserve:N Project ExemptionValidityDateFrom "
    "ExemptionValidityDateTo WareHouseUpdateType Rounding:N ExternalCorrectedDocNum "
    "InternalCorrectedDocNum NextCorrectingDocument DeferredTax:N TaxExemptionLetterNum WTApplied:0 "
    "WTAppliedFC:0 BillOfExchangeReserved:N AgentCode WTAppliedSC:0 TotalEqualizationTax:0 "
    "TotalEqualizationTaxFC:0 TotalEqualizationTaxSC:0 NumberOfInstallments:i "
    "ApplyTaxOnFirstInstallment:N WTNonSubjectAmount:0 WTNonSubjectAmountSC:0 WTNonSubjectAmountFC:0 "
    "WTExemptedAmount:0 WTExemptedAmountSC:0 WTExemptedAmountFC:0 BaseAmount:0 BaseAmountSC:0 "
    "BaseAmountFC:0 WTAmount:0 WTAmountSC:0 WTAmountFC:0 VatDate DocumentsOwner FolioPrefixString "
    "FolioNumber DocumentSubType Address2 DocumentStatus PeriodIndicator PayToCode ManualNumber "
    "UseShpdGoodsAct:N IsPayToBank:N PayToBankCountry PayToBankCode PayToBankAccountNo PayToBankBranch "
    "BPL_IDAssignedToInvoice DownPayment:0 ReserveInvoice:N LanguageCode:i TrackingNumber PickRemark "
    "ClosingDate SequenceCode SequenceSerial SeriesString SubSeriesString SequenceModel "
    "UseCorrectionVATGroup:N TotalDiscount:0 DownPaymentAmount:0 DownPaymentPercentage:0 "
    "DownPaymentType DownPaymentAmountSC:0 DownPaymentAmountFC:0 VatPercent:0 "
    "ServiceGrossProfitPercent:0 OpeningRemarks ClosingRemarks RoundingDiffAmount:0 "
    "RoundingDiffAmountFC:0 RoundingDiffAmountSC:0 Cancelled SignatureInputMessage SignatureDigest "
    "CertificationNumber PrivateKeyVersion ControlAccount InsuranceOperation347:N "
    "ArchiveNonremovableSalesQuotation:N GTSChecker GTSPayee ExtraMonth:i ExtraDays:i "
    "CashDiscountDateOffset:i StartFrom NTSApproved:N ETaxWebSite ETaxNumber NTSApprovedNumber "
    "EDocGenerationType EDocSeries EDocNum EDocExportFormat EDocStatus EDocErrorCode EDocErrorMessage "
    "DownPaymentStatus GroupSeries GroupNumber GroupHandWritten:N ReopenOriginalDocument "
    "ReopenManuallyClosedOrCanceledDocument CreateOnlineQuotation:N POSEquipmentNumber "
    "POSManufacturerSerialNumber POSCashierNumber ApplyCurrentVATRatesForDownPaymentsToDraw:N "
    "ClosingOption SpecifiedClosingDate OpenForLandedCosts:Y AuthorizationStatus TotalDiscountFC:0 "
    "TotalDiscountSC:0 RelevantToGTS:N BPLName VATRegNum AnnualInvoiceDeclarationReference Supplier "
    "Releaser Receiver BlanketAgreementNumber IsAlteration:N CancelStatus AssetValueDate "
    "DocumentDelivery AuthorizationCode StartDeliveryDate StartDeliveryTime EndDeliveryDate "
    "EndDeliveryTime VehiclePlate ATDocumentType ElecCommStatus ElecCommMessage ReuseDocumentNum:N "
    "ReuseNotaFiscalNum:N PrintSEPADirect:N FiscalDocNum POSDailySummaryNo POSReceiptNo "
    "PointOfIssueCode Letter FolioNumberFrom FolioNumberTo InterimType RelatedType RelatedEntry "
    "SAPPassport DocumentTaxID DateOfReportingControlStatementVAT ReportingSectionControlStatementVAT "
    "ExcludeFromTaxReportControlStatementVAT:N POS_CashRegister UpdateTime CreateQRCodeFrom PriceMode "
    "ShipFrom CommissionTrade CommissionTradeReturn:N UseBillToAddrToDetermineTax:N Cig Cup FatherCard "
    "FatherType ShipState ShipPlace CustOffice FCI AddLegIn LegTextF DANFELgTxt IndFinal:N DataVersion:i "
    "CreateDate CreateTime " + DOCUMENT_USER_FIELDS + " "
    "Document_ApprovalRequests:L DocumentLines:L ElectronicProtocols:L DocumentAdditionalExpenses:L "
    "WithholdingTaxDataWTXCollection:L WithholdingTaxDataCollection:L DocumentPackages:L "
    "DocumentSpecialLines:L DocumentInstallments:L DownPaymentsToDraw:L DocumentReferences:L",
    {
        INT: (
            "DocEntry DocNum AttachmentEntry ImportFileNum ContactPersonCode TransNum Form1099 "
            "PaymentBlockEntry InternalCorrectedDocNum NextCorrectingDocument DocumentsOwner "
            "FolioNumber BPL_IDAssignedToInvoice SequenceCode SequenceSerial PrivateKeyVersion "
            "GTSChecker GTSPayee ETaxWebSite EDocSeries EDocExportFormat GroupSeries GroupNumber "
            "POSCashierNumber AnnualInvoiceDeclarationReference Releaser Receiver "
            "BlanketAgreementNumber POSDailySummaryNo POSReceiptNo FolioNumberFrom FolioNumberTo "
            "RelatedType RelatedEntry POS_CashRegister Cig Cup LegTextF"
        ),
        DATE: "ExemptionValidityDateFrom ExemptionValidityDateTo DateOfReportingControlStatementVAT",
        "BoYesNoEnum": "Cancelled ReopenOriginalDocument ReopenManuallyClosedOrCanceledDocument",
        "PrintStatusEnum": "Printed",
        "BoDocumentTypes": "DocType",
        "BoDocSummaryTypes": "SummeryType",
        "BoObjectTypes": "DocObjectCode",
        "BoDocWhsUpdateTypes": "WareHouseUpdateType",
        "BoDocumentSubType": "DocumentSubType",
        "BoStatus": "DocumentStatus",
        "DownPaymentTypeEnum": "DownPaymentType",
        "BoPayTermDueTypes": "StartFrom",
        "EDocGenerationTypeEnum": "EDocGenerationType",
        "EDocStatusEnum": "EDocStatus",
        "BoSoStatus": "DownPaymentStatus",
        "ClosingOptionEnum": "ClosingOption",
        "DocumentAuthorizationStatusEnum": "AuthorizationStatus",
        "CancelStatusEnum": "CancelStatus",
        "DocumentDeliveryTypeEnum": "DocumentDelivery",
        "ElecCommStatusEnum": "ElecCommStatus",
        "FolioLetterEnum": "Letter",
        "BoInterimDocTypes": "InterimType",
        "PriceModeDocumentEnum": "PriceMode",
        "CommissionTradeTypeEnum": "CommissionTrade",
        "BoFatherCardTypes": "FatherType",
    },
)

DOCUMENT_LINE = parse(
    "DocumentLine",
    "LineNum ItemCode ItemDescription Quantity:0 ShipDate Price:0 PriceAfterVAT:0 Currency Rate:0 "
    "DiscountPercent:0 VendorNum SerialNum WarehouseCode SalesPersonCode:i CommisionPercent:0 TreeType "
    "AccountCode UseBaseUnits:N SupplierCatNum CostingCode ProjectCode BarCode VatGroup BaseType:i "
    "BaseEntry BaseLine Address TaxCode TaxType TaxLiable:Y PickStatus:N PickQuantity:0 FreeText "
    "ShippingMethod WTLiable:N DeferredTax:N NetTaxAmount:0 MeasureUnit UnitsOfMeasurment:0 "
    "LineTotal:0 TaxPercentagePerRow:0 TaxTotal:0 RowTotalFC:0 RowTotalSC:0 UnitPrice:0 LineStatus "
    "LineType COGSCostingCode COGSAccountCode CostingCode2 CostingCode3 CostingCode4 CostingCode5 "
    "ItemDetails LocationCode ActualDeliveryDate RemainingOpenQuantity:0 OpenAmount:0 OpenAmountFC:0 "
    "RequiredDate DocEntry UoMEntry UoMCode InventoryQuantity:0 GrossTotal:0 ShipToCode "
    "U_LineRef U_Serials U_Note LineTaxJurisdictions:L SerialNumbers:L BatchNumbers:L "
    "DocumentLinesBinAllocations:L",
    {
        INT: "LineNum BaseEntry BaseLine ShippingMethod LocationCode DocEntry UoMEntry",
        "BoItemTreeTypes": "TreeType",
        "BoTaxTypes": "TaxType",
        "BoStatus": "LineStatus",
        "BoDocLineType": "LineType",
    },
)

BUSINESS_PARTNER = parse(
    "BusinessPartner",
    "CardCode CardName CardType GroupCode:i Address ZipCode MailAddress MailZipCode Phone1 Phone2 Fax "
    "ContactPerson Notes PayTermsGrpCode:i CreditLimit:0 MaxCommitment:0 DiscountPercent:0 "
    "VatLiable PriceListNum:i FederalTaxID DeductibleAtSource:N DeductionPercent:0 DeductionValidUntil "
    "Currency Cellular AvarageLate:i City County Country MailCity MailCounty MailCountry EmailAddress "
    "Picture DefaultAccount DefaultBranch DefaultBankCode Website Properties1:N Properties2:N "
    "Properties3:N Properties4:N Properties5:N Properties6:N Properties7:N Properties8:N Properties9:N "
    "Properties10:N Properties11:N Properties12:N Properties13:N Properties14:N Properties15:N "
    "Properties16:N CompanyPrivate FreeText SalesPersonCode:i Indicator ExemptNum DebitorAccount "
    "OpenOrdersBalance:0 OpenDeliveryNotesBalance:0 VatGroup ShippingType:i Password Industry "
    "IndustryType CurrentAccountBalance:0 Valid Frozen ValidFrom ValidTo FrozenFrom FrozenTo "
    "Block BillToState ShipToState ExemptionMaxAmountValidationType AliasName "
    "DunningTerm Channel BPPaymentMethods:L BPAddresses:L ContactEmployees:L BPBankAccounts:L "
    "CreateDate CreateTime UpdateDate UpdateTime DataVersion:i "
    "U_ExternalId U_SalesforceId U_ServiceTitanId U_Segment U_Territory U_CreditRating U_PortalUser "
    "U_LoyaltyTier U_OnboardedBy U_Region U_Language U_Notes U_TaxExempt U_LegacyCode U_PaymentPortal",
    {
        INT: "Industry",
        DATE: "DeductionValidUntil",
        "BoYesNoEnum": "Valid Frozen",
        "BoCardTypes": "CardType",
        "BoVatStatus": "VatLiable",
        "BoCardCompanyTypes": "CompanyPrivate",
        "ExemptionMaxAmountValidationTypeEnum": "ExemptionMaxAmountValidationType",
    },
)

BP_ADDRESS = parse(
    "BPAddress",
    "AddressName Street Block ZipCode City County Country State FederalTaxID TaxCode BuildingFloorRoom "
    "AddressType AddressName2 AddressName3 TypeOfAddress StreetNo BPCode RowNum GlobalLocationNumber "
    "Nationality TaxOffice GSTIN GstType CreateDate CreateTime",
    {
        INT: "RowNum",
        "BoAddressType": "AddressType",
        "BoGSTRegnTypeEnum": "GstType",
    },
)

ITEM_PROPERTIES = " ".join(f"Properties{i}:N" for i in range(1, 65))

ITEM = parse(
    "Item",
    "ItemCode ItemName ForeignName ItemsGroupCode:i CustomsGroupCode:i SalesVATGroup BarCode "
    "VatLiable:Y PurchaseItem SalesItem InventoryItem IncomeAccount ExemptIncomeAccount ExpanseAccount "
    "Mainsupplier SupplierCatalogNo DesiredInventory:0 MinInventory:0 Picture User_Text "
    "SerialNum CommissionPercent:0 CommissionSum:0 CommissionGroup:i TreeType AssetItem:N "
    "DataExportCode Manufacturer:i QuantityOnStock:0 QuantityOrderedFromVendors:0 "
    "QuantityOrderedByCustomers:0 ManageSerialNumbers:N ManageBatchNumbers:N Valid ValidFrom ValidTo "
    "ValidRemarks Frozen FrozenFrom FrozenTo FrozenRemarks SalesUnit SalesItemsPerUnit:0 "
    "SalesPackagingUnit SalesQtyPerPackUnit:0 SalesUnitLength:0 SalesLengthUnit SalesUnitWidth:0 "
    "SalesWidthUnit SalesUnitHeight:0 SalesHeightUnit SalesUnitVolume:0 SalesVolumeUnit:i "
    "SalesUnitWeight:0 SalesWeightUnit PurchaseUnit PurchaseItemsPerUnit:0 PurchasePackagingUnit "
    "PurchaseQtyPerPackUnit:0 PurchaseUnitLength:0 PurchaseLengthUnit PurchaseUnitWidth:0 "
    "PurchaseWidthUnit PurchaseUnitHeight:0 PurchaseHeightUnit PurchaseUnitVolume:0 "
    "PurchaseVolumeUnit:i PurchaseUnitWeight:0 PurchaseWeightUnit PurchaseVATGroup SalesFactor1:0 "
    "SalesFactor2:0 SalesFactor3:0 SalesFactor4:0 PurchaseFactor1:0 PurchaseFactor2:0 "
    "PurchaseFactor3:0 PurchaseFactor4:0 MovingAveragePrice:0 ForeignRevenuesAccount "
    "ECRevenuesAccount ForeignExpensesAccount ECExpensesAccount AvgStdPrice:0 DefaultWarehouse "
    "ShipType:i GLMethod ItemType TaxType MaxInventory:0 ManageStockByWarehouse:N "
    "PurchaseHeightUnit1 PurchaseUnitHeight1:0 PurchaseLengthUnit1 PurchaseUnitLength1:0 "
    "PurchaseWeightUnit1 PurchaseUnitWeight1:0 PurchaseWidthUnit1 PurchaseUnitWidth1:0 "
    "SalesHeightUnit1 SalesUnitHeight1:0 SalesLengthUnit1 SalesUnitLength1:0 SalesWeightUnit1 "
    "SalesUnitWeight1:0 SalesWidthUnit1 SalesUnitWidth1:0 ForceSelectionOfSerialNumber:N "
    "ManageSerialNumbersOnReleaseOnly:N WTLiable:N CostAccountingMethod IssueMethod "
    "SRIAndBatchManageMethod IndirectTax:N ArTaxCode ApTaxCode BaseUnitName ItemCountryOrg "
    "IssuePrimarilyBy NoDiscounts:N AssetClass AssetGroup InventoryNumber Technician Employee "
    "Location AssetStatus CapitalizationDate StatisticalAsset:N Cession:N "
    "DeactivateAfterUsefulLife:N ManageByQuantity:N UoMGroupEntry:i InventoryUoMEntry "
    "DefaultSalesUoMEntry DefaultPurchasingUoMEntry DepreciationGroup AssetSerialNumber "
    "InventoryWeight:0 InventoryWeightUnit InventoryWeight1:0 InventoryWeightUnit1 "
    "DefaultCountingUnit CountingItemsPerUnit:0 DefaultCountingUoMEntry Excisable:N ChapterID "
    "ScsCode SpProdType ProdStdCost:0 InCostRollup:Y VirtualAssetItem:N EnforceAssetSerialNumbers:N "
    "AttachmentEntry LinkedResource GSTRelevnt:N SACEntry GSTTaxCategory ServiceCategoryEntry "
    "CapitalGoodsOnHoldPercent CapitalGoodsOnHoldLimit AssessableValue:0 AssVal4WTR:0 "
    "SOIExcisable ProfitCenter CostCenter ItemClass Material CreateDate CreateTime UpdateDate "
    "UpdateTime DataVersion:i InventoryUOM PlanningSystem ProcurementMethod ComponentWarehouse "
    "OrderIntervals OrderMultiple:0 LeadTime MinOrderQuantity:0 ItemPrices:L "
    "ItemWarehouseInfoCollection:L ItemPreferredVendors:L ItemLocalizationInfos:L "
    "ItemProjects:L ItemDistributionRules:L ItemAttributeGroups:L ItemDepreciationParameters:L "
    "ItemPeriodControls:L ItemUnitOfMeasurementCollection:L ItemBarCodeCollection:L "
    "ItemIntrastatExtension " + ITEM_PROPERTIES + " "
    "U_ExternalId U_Brand U_Model U_Color U_Size U_Material U_Origin U_HSCode U_Shelf U_Warranty "
    "U_WebVisible U_WebCategory U_MinMargin U_Season U_Supplier2 U_LegacyCode U_Notes",
    {
        INT: (
            "SalesLengthUnit SalesWidthUnit SalesHeightUnit SalesWeightUnit PurchaseLengthUnit "
            "PurchaseWidthUnit PurchaseHeightUnit PurchaseWeightUnit PurchaseHeightUnit1 "
            "PurchaseLengthUnit1 PurchaseWeightUnit1 PurchaseWidthUnit1 SalesHeightUnit1 "
            "SalesLengthUnit1 SalesWeightUnit1 SalesWidthUnit1 Technician Employee Location "
            "InventoryUoMEntry DefaultSalesUoMEntry DefaultPurchasingUoMEntry InventoryWeightUnit "
            "InventoryWeightUnit1 DefaultCountingUoMEntry ChapterID AttachmentEntry SACEntry "
            "ServiceCategoryEntry OrderIntervals LeadTime"
        ),
        DOUBLE: "CapitalGoodsOnHoldPercent CapitalGoodsOnHoldLimit",
        "BoYesNoEnum": "PurchaseItem SalesItem InventoryItem Valid Frozen",
        "BoItemTreeTypes": "TreeType",
        "BoGLMethods": "GLMethod",
        "ItemTypeEnum": "ItemType",
        "BoTaxTypes": "TaxType",
        "BoInventorySystem": "CostAccountingMethod",
        "BoIssueMethod": "IssueMethod",
        "BoManageMethod": "SRIAndBatchManageMethod",
        "IssuePrimarilyByEnum": "IssuePrimarilyBy",
        "AssetStatusEnum": "AssetStatus",
        "SpecialProductTypeEnum": "SpProdType",
        "GSTTaxCategoryEnum": "GSTTaxCategory",
        "SOIExcisableTypeEnum": "SOIExcisable",
        "ItemClassEnum": "ItemClass",
        "BoPlanningSystem": "PlanningSystem",
        "BoProcurementMethod": "ProcurementMethod",
        "BoMRPComponentWarehouse": "ComponentWarehouse",
        COMPLEX: "ItemIntrastatExtension",
    },
)

ITEM_PRICE = parse(
    "ItemPrice",
    "PriceList Price:0 Currency AdditionalPrice1:0 AdditionalCurrency1 AdditionalPrice2:0 "
    "AdditionalCurrency2 BasePriceList Factor:0 UoMPrices:L",
    {
        INT: "PriceList BasePriceList",
    },
)

ITEM_WAREHOUSE = parse(
    "ItemWarehouseInfo",
    "MinimalStock:0 MaximalStock:0 MinimalOrder:0 StandardAveragePrice:0 Locked:N "
    "InventoryAccount CostAccount TransferAccount RevenuesAccount VarienceAccount "
    "DecreasingAccount IncreasingAccount ReturningAccount ExpensesAccount EURevenuesAccount "
    "EUExpensesAccount ForeignRevenueAcc ForeignExpensAcc ExemptIncomeAcc PriceDifferenceAcc "
    "WarehouseCode InStock:0 Committed:0 Ordered:0 CountedQuantity:0 WasCounted:N UserSignature "
    "Counted:0 ExpenseClearingAct PurchaseCreditAcc EUPurchaseCreditAcc ForeignPurchaseCreditAcc "
    "SalesCreditAcc SalesCreditEUAcc ExemptedCredits SalesCreditForeignAcc ItemCode "
    "ItemCycleCounts:L",
    {
        INT: "UserSignature",
    },
)

PAYMENT = parse(
    "Payment",
    "DocNum DocType HandWritten:N Printed:N DocDate CardCode CardName Address CashAccount DocCurrency "
    "CashSum:0 CheckAccount TransferAccount TransferSum:0 TransferDate TransferReference LocalCurrency:N "
    "DocRate:0 Reference1 Reference2 CounterReference Remarks JournalRemarks SplitTransaction:N "
    "ContactPersonCode ApplyVAT:N TaxDate Series:i BankCode BankAccount DiscountPercent:0 "
    "ProjectCode CurrencyIsLocal:N DeductionPercent:0 DeductionSum:0 CashSumFC:0 CashSumSys:0 "
    "BoeAccount BillOfExchangeAmount:0 BillofExchangeStatus BillOfExchangeAmountFC:0 "
    "BillOfExchangeAmountSC:0 BillOfExchangeAgent WTCode WTAmount:0 WTAmountFC:0 WTAmountSC:0 "
    "WTAccount WTTaxableAmount:0 Proforma:N PayToBankCode PayToBankBranch PayToBankAccountNo "
    "PayToCode PayToBankCountry IsPayToBank:N DocEntry PaymentPriority DueDate LocalCurrency2 "
    "Cancelled AuthorizationStatus BPLID BPLName VATRegNum BlanketAgreement PaymentByWTCertif:N "
    "Cig Cup AttachmentEntry SignatureInputMessage SignatureDigest CertificationNumber "
    "PrivateKeyVersion EDocExportFormat ElecCommStatus ElecCommMessage SplitVendorCreditRow:N "
    "DigitalPayments:N CreateDate CreateTime UpdateDate UpdateTime DataVersion:i "
    "U_ExternalId U_SourceSystem U_SyncStatus U_Processor U_BatchRef U_CardLast4 U_PortalRef "
    "U_Terminal U_SettlementId U_Notes U_Region U_Channel U_ApprovedBy U_Route U_EDIRef "
    "PaymentChecks:L PaymentInvoices:L PaymentCreditCards:L PaymentAccounts:L "
    "PaymentDocumentReferencesCollection:L BillOfExchange CashFlowAssignments:L "
    "Payments_ApprovalRequests:L WithholdingTaxCertificatesCollection:L ElectronicProtocols:L",
    {
        INT: (
            "DocNum ContactPersonCode DocEntry BPLID BlanketAgreement Cig Cup AttachmentEntry "
            "PrivateKeyVersion EDocExportFormat"
        ),
        "BoYesNoEnum": "Cancelled",
        "BoRcptTypes": "DocType",
        "BoBoeStatus": "BillofExchangeStatus",
        "BoPaymentPriorities": "PaymentPriority",
        "PaymentsAuthorizationStatusEnum": "AuthorizationStatus",
        "ElecCommStatusEnum": "ElecCommStatus",
        COMPLEX: "BillOfExchange",
    },
)

PAYMENT_INVOICE = parse(
    "PaymentInvoice",
    "LineNum DocEntry SumApplied:0 AppliedFC:0 AppliedSys:0 DocRate:0 DocLine:i InvoiceType "
    "DiscountPercent:0 PaidSum:0 InstallmentId:i WitholdingTaxApplied:0 WitholdingTaxAppliedFC:0 "
    "WitholdingTaxAppliedSC:0 LinkDate DistributionRule DistributionRule2 DistributionRule3 "
    "DistributionRule4 DistributionRule5 TotalDiscount:0 TotalDiscountFC:0 TotalDiscountSC:0",
    {
        INT: "LineNum DocEntry",
        "BoRcptInvTypes": "InvoiceType",
    },
)

JOURNAL_ENTRY = parse(
    "JournalEntry",
    "ReferenceDate Memo Reference Reference2 TransactionCode ProjectCode TaxDate JdtNum Indicator "
    "UseAutoStorno:N StornoDate VatDate Series:i StampTax:N DueDate AutoVAT:N Number ReportEU:N "
    "Report347:N Printed:psNo LocationCode OriginalJournal BlockDunningLetter:N "
    "AutomaticWT:N WTSum:0 WTSumSC:0 WTSumFC:0 SignatureInputMessage SignatureDigest "
    "CertificationNumber PrivateKeyVersion Corisptivi:N Reference3 DocumentType DeferredTax:N "
    "BlanketAgreementNumber OperationCode ResidenceNumberType ECDPostingType ExposedTransNumber "
    "PointOfIssueCode Letter FolioNumberFrom FolioNumberTo IsCostCenterTransfer:N "
    "ReportingSectionControlStatementVAT ExcludeFromTaxReportControlStatementVAT:N SAPPassport "
    "Cig Cup AdjustTransaction:N AttachmentEntry UpdateDate CreateDate DataVersion:i "
    "U_ExternalId U_SourceSystem U_Batch U_ApprovedBy U_Notes U_Region U_Channel U_Route U_EDIRef "
    "U_PortalRef U_Priority U_SyncStatus U_CostNote U_Inspector U_Period "
    "JournalEntryLines:L WithholdingTaxDataCollection:L ElectronicProtocols:L",
    {
        INT: (
            "JdtNum Number LocationCode PrivateKeyVersion BlanketAgreementNumber ExposedTransNumber "
            "FolioNumberFrom FolioNumberTo Cig Cup AttachmentEntry"
        ),
        "PrintStatusEnum": "Printed",
        "TransTypesEnum": "OriginalJournal",
        "OperationCodeTypeEnum": "OperationCode",
        "ResidenceNumberTypeEnum": "ResidenceNumberType",
        "ECDPostingTypeEnum": "ECDPostingType",
        "FolioLetterEnum": "Letter",
    },
)

JOURNAL_LINE = parse(
    "JournalEntryLine",
    "Line_ID AccountCode Debit:0 Credit:0 FCDebit:0 FCCredit:0 FCCurrency DueDate ShortName "
    "ContraAccount LineMemo ReferenceDate1 ReferenceDate2 Reference1 Reference2 ProjectCode "
    "CostingCode TaxDate BaseSum:0 TaxGroup DebitSys:0 CreditSys:0 VatDate VatLine:N SystemBaseAmount:0 "
    "VatAmount:0 SystemVatAmount:0 GrossValue:0 AdditionalReference CostingCode2 CostingCode3 "
    "CostingCode4 CostingCode5 TaxCode TaxPostAccount LocationCode ControlAccount BPLID BPLName "
    "VATRegNum PaymentBlock:N BlockReason",
    {
        INT: "Line_ID LocationCode BPLID BlockReason",
        DATE: "ReferenceDate1 ReferenceDate2",
        "BoTaxPostAccEnum": "TaxPostAccount",
    },
)

ACCOUNT = parse(
    "ChartOfAccount",
    "Code Name Balance:0 CashAccount:N ActiveAccount AccountType ExternalCode AcctCurrency "
    "BalanceSyscurr:0 BalanceFrgnCurr:0 Protected:N ReconciledAccount:N LiableForAdvances:N "
    "ExternalReconNo:i BudgetAccount:N RateConversion:N TaxExemptAccount:N FatherAccountKey "
    "ForeignName Details AccountLevel:i FrozenFor ValidFor:Y ValidFrom ValidTo ValidRemarks "
    "FrozenFrom FrozenTo FrozenRemarks ProjectCode DistributionRule DistributionRule2 "
    "DistributionRule3 DistributionRule4 DistributionRule5 AllowChangeVatGroup:N DefaultVatGroup "
    "LockManualTransaction LoadingType CategoryCode DatevAccount DatevAutoAccount:N "
    "DatevFirstDataEntry:N AccountOfProfitAndLoss:N PrimaryAccount:N BlockManualPosting:N "
    "CashFlowRelevant:N FormatCode TotalOption StandardAccountCode AccountCodeForAccountFinancialSection "
    "U_ReportLine U_IFRSMap U_Notes",
    {
        "BoYesNoEnum": "ActiveAccount FrozenFor LockManualTransaction LoadingType",
        "BoAccountTypes": "AccountType",
        INT: "CategoryCode",
    },
)

PROFIT_CENTER = parse(
    "ProfitCenter",
    "CenterCode CenterName GroupCode InWhichDimension:i CostCenterType EffectiveFrom EffectiveTo "
    "Active CenterOwner U_Manager U_Notes",
    {
        INT: "CenterOwner",
        "BoYesNoEnum": "Active",
    },
)

DIMENSION = parse(
    "Dimension",
    "DimensionCode DimensionName IsActive DimensionDescription",
    {
        INT: "DimensionCode",
        "BoYesNoEnum": "IsActive",
    },
)

APPROVAL_REQUEST_LINE = parse(
    "ApprovalRequestLine",
    "StageCode UserID Status Remarks UpdateDate UpdateTime CreationDate CreationTime",
    {
        INT: "StageCode UserID",
        "BoApprovalRequestDecisionEnum": "Status",
    },
)

APPROVAL_REQUEST_DECISION = parse(
    "ApprovalRequestDecision",
    "ApproverUserName ApproverPassword Status Remarks",
    {"BoApprovalRequestDecisionEnum": "Status"},
)

APPROVAL_REQUEST = parse(
    "ApprovalRequest",
    "Code ApprovalTemplatesID ObjectType IsDraft ObjectEntry Status Remarks CurrentStage OriginatorID "
    "CreationDate CreationTime DraftEntry ApprovalRequestLines:L ApprovalRequestDecisions:L",
    {
        INT: "Code ApprovalTemplatesID ObjectEntry CurrentStage OriginatorID DraftEntry",
        "BoApprovalRequestStatusEnum": "Status",
    },
)

#: The modelled child collections: their rows' type, wherever the collection appears.
CHILDREN: dict[str, Template] = {
    "DocumentLines": DOCUMENT_LINE,
    "BPAddresses": BP_ADDRESS,
    "ItemPrices": ITEM_PRICE,
    "ItemWarehouseInfoCollection": ITEM_WAREHOUSE,
    "PaymentInvoices": PAYMENT_INVOICE,
    "JournalEntryLines": JOURNAL_LINE,
    "ApprovalRequestLines": APPROVAL_REQUEST_LINE,
    "ApprovalRequestDecisions": APPROVAL_REQUEST_DECISION,
}
