# The five cost-accounting dimensions (SAP Dimensions).
view: dim_dimension {
  sql_table_name: sap_b1.dim_dimension ;;

  dimension: pk { primary_key: yes hidden: yes sql: ${TABLE}.company || '-' || ${TABLE}.dimension_code ;; }
  dimension: company {
    label: "Company"
    description: "The SAP company the row was read from: its Airflow connection id (dim_company names its CompanyDB)."
    sql: ${TABLE}.company ;;
  }
  dimension: dimension_code { type: number sql: ${TABLE}.dimension_code ;; }
  dimension: dimension_name { sql: ${TABLE}.dimension_name ;; }
  dimension: is_active { type: yesno sql: ${TABLE}.is_active ;; }
  dimension: description { sql: ${TABLE}.description ;; }
}
