"""The wide shapes of the imitated Service Layer entities.

A real Service Layer answers with hundreds of properties per record, most of them null or
``"tNO"``. Each list below names the properties in the order the server emits them; a suffix
gives the default of a property the sandbox does not model: ``:N`` ``"tNO"``, ``:Y`` ``"tYES"``,
``:0`` ``0.0``, ``:i`` ``0``, ``:L`` an empty collection; no suffix is ``null``. Modelled
properties (keys, dates, amounts, references) are filled from each record's compact core when
the record is serialized, so only the properties a reply asks for are ever built.
"""

from __future__ import annotations

from typing import Any

_DEFAULTS: dict[str, Any] = {"N": "tNO", "Y": "tYES", "0": 0.0, "i": 0}


def parse(spec: str) -> dict[str, Any]:
    """Turn a property list into an ordered ``{name: default}`` template."""
    out: dict[str, Any] = {}
    for token in spec.split():
        name, _, suffix = token.partition(":")
        if suffix == "L":
            out[name] = []
        else:
            out[name] = _DEFAULTS.get(suffix) if suffix else None
    return out


DOCUMENT_USER_FIELDS = (
    "U_ExternalId U_SourceSystem U_SyncStatus U_Region U_Channel U_ApprovedBy U_ContractNo U_Route "
    "U_PortalRef U_Priority U_WMSStatus U_ShipVia U_CostNote U_PromoCode U_EDIRef U_Inspector U_DeliveryWindow"
)

DOCUMENT = parse(
    "DocEntry DocNum DocType HandWritten:N Printed:N DocDate DocDueDate CardCode CardName Address "
    "NumAtCard DocTotal:0 AttachmentEntry DocCurrency DocRate:0 Reference1 Reference2 Comments "
    "JournalMemo PaymentGroupCode:i DocTime SalesPersonCode:i TransportationCode:i Confirmed:Y "
    "ImportFileNum SummeryType ContactPersonCode ShowSCN:N Series:i TaxDate PartialSupply:Y "
    "DocObjectCode ShipToCode Indicator FederalTaxID DiscountPercent:0 PaymentReference CreationDate "
    "UpdateDate FinancialPeriod:i UserSign:i TransNum VatSum:0 VatSumSys:0 VatSumFc:0 NetProcedure:N "
    "DocTotalFc:0 DocTotalSys:0 Form1099 Box1099 RevisionPo:N RequriedDate CancelDate BlockDunning:N "
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
    "DocumentSpecialLines:L DocumentInstallments:L DownPaymentsToDraw:L DocumentReferences:L"
)

DOCUMENT_LINE = parse(
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
    "DocumentLinesBinAllocations:L"
)

BUSINESS_PARTNER = parse(
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
    "U_LoyaltyTier U_OnboardedBy U_Region U_Language U_Notes U_TaxExempt U_LegacyCode U_PaymentPortal"
)

BP_ADDRESS = parse(
    "AddressName Street Block ZipCode City County Country State FederalTaxID TaxCode BuildingFloorRoom "
    "AddressType AddressName2 AddressName3 TypeOfAddress StreetNo BPCode RowNum GlobalLocationNumber "
    "Nationality TaxOffice GSTIN GstType CreateDate CreateTime"
)

ITEM_PROPERTIES = " ".join(f"Properties{i}:N" for i in range(1, 65))

ITEM = parse(
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
    "U_WebVisible U_WebCategory U_MinMargin U_Season U_Supplier2 U_LegacyCode U_Notes"
)

ITEM_PRICE = parse(
    "PriceList Price:0 Currency AdditionalPrice1:0 AdditionalCurrency1 AdditionalPrice2:0 "
    "AdditionalCurrency2 BasePriceList Factor:0 UoMPrices:L"
)

ITEM_WAREHOUSE = parse(
    "MinimalStock:0 MaximalStock:0 MinimalOrder:0 StandardAveragePrice:0 Locked:N "
    "InventoryAccount CostAccount TransferAccount RevenuesAccount VarienceAccount "
    "DecreasingAccount IncreasingAccount ReturningAccount ExpensesAccount EURevenuesAccount "
    "EUExpensesAccount ForeignRevenueAcc ForeignExpensAcc ExemptIncomeAcc PriceDifferenceAcc "
    "WarehouseCode InStock:0 Committed:0 Ordered:0 CountedQuantity:0 WasCounted:N UserSignature "
    "Counted:0 ExpenseClearingAct PurchaseCreditAcc EUPurchaseCreditAcc ForeignPurchaseCreditAcc "
    "SalesCreditAcc SalesCreditEUAcc ExemptedCredits SalesCreditForeignAcc ItemCode "
    "ItemCycleCounts:L"
)

PAYMENT = parse(
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
    "Payments_ApprovalRequests:L WithholdingTaxCertificatesCollection:L ElectronicProtocols:L"
)

PAYMENT_INVOICE = parse(
    "LineNum DocEntry SumApplied:0 AppliedFC:0 AppliedSys:0 DocRate:0 DocLine:i InvoiceType "
    "DiscountPercent:0 PaidSum:0 InstallmentId:i WitholdingTaxApplied:0 WitholdingTaxAppliedFC:0 "
    "WitholdingTaxAppliedSC:0 LinkDate DistributionRule DistributionRule2 DistributionRule3 "
    "DistributionRule4 DistributionRule5 TotalDiscount:0 TotalDiscountFC:0 TotalDiscountSC:0"
)

JOURNAL_ENTRY = parse(
    "ReferenceDate Memo Reference Reference2 TransactionCode ProjectCode TaxDate JdtNum Indicator "
    "UseAutoStorno:N StornoDate VatDate Series:i StampTax:N DueDate AutoVAT:N Number ReportEU:N "
    "Report347:N Printed:N LocationCode OriginalJournal BlockDunningLetter:N "
    "AutomaticWT:N WTSum:0 WTSumSC:0 WTSumFC:0 SignatureInputMessage SignatureDigest "
    "CertificationNumber PrivateKeyVersion Corisptivi:N Reference3 DocumentType DeferredTax:N "
    "BlanketAgreementNumber OperationCode ResidenceNumberType ECDPostingType ExposedTransNumber "
    "PointOfIssueCode Letter FolioNumberFrom FolioNumberTo IsCostCenterTransfer:N "
    "ReportingSectionControlStatementVAT ExcludeFromTaxReportControlStatementVAT:N SAPPassport "
    "Cig Cup AdjustTransaction:N AttachmentEntry UpdateDate CreateDate DataVersion:i "
    "U_ExternalId U_SourceSystem U_Batch U_ApprovedBy U_Notes U_Region U_Channel U_Route U_EDIRef "
    "U_PortalRef U_Priority U_SyncStatus U_CostNote U_Inspector U_Period "
    "JournalEntryLines:L WithholdingTaxDataCollection:L ElectronicProtocols:L"
)

JOURNAL_LINE = parse(
    "Line_ID AccountCode Debit:0 Credit:0 FCDebit:0 FCCredit:0 FCCurrency DueDate ShortName "
    "ContraAccount LineMemo ReferenceDate1 ReferenceDate2 Reference1 Reference2 ProjectCode "
    "CostingCode TaxDate BaseSum:0 TaxGroup DebitSys:0 CreditSys:0 VatDate VatLine:N SystemBaseAmount:0 "
    "VatAmount:0 SystemVatAmount:0 GrossValue:0 AdditionalReference CostingCode2 CostingCode3 "
    "CostingCode4 CostingCode5 TaxCode TaxPostAccount LocationCode ControlAccount BPLID BPLName "
    "VATRegNum PaymentBlock:N BlockReason"
)

ACCOUNT = parse(
    "Code Name Balance:0 CashAccount:N ActiveAccount AccountType ExternalCode AcctCurrency "
    "BalanceSyscurr:0 BalanceFrgnCurr:0 Protected:N ReconciledAccount:N LiableForAdvances:N "
    "ExternalReconNo:N BudgetAccount:N RateConversion:N TaxExemptAccount:N FatherAccountKey "
    "ForeignName Details AccountLevel:i FrozenFor ValidFor:Y ValidFrom ValidTo ValidRemarks "
    "FrozenFrom FrozenTo FrozenRemarks ProjectCode DistributionRule DistributionRule2 "
    "DistributionRule3 DistributionRule4 DistributionRule5 AllowChangeVatGroup:N DefaultVatGroup "
    "LockManualTransaction LoadingType CategoryCode DatevAccount:N DatevAutoAccount:N "
    "DatevFirstDataEntry:N AccountOfProfitAndLoss:N PrimaryAccount:N BlockManualPosting:N "
    "CashFlowRelevant:N FormatCode TotalOption StandardAccountCode AccountCodeForAccountFinancialSection "
    "U_ReportLine U_IFRSMap U_Notes"
)

PROFIT_CENTER = parse(
    "CenterCode CenterName GroupCode InWhichDimension:i CostCenterType EffectiveFrom EffectiveTo "
    "Active CenterOwner U_Manager U_Notes"
)

DIMENSION = parse("DimensionCode DimensionName IsActive DimensionDescription")
